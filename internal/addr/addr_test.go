package addr

import (
	"bufio"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/status"
)

func errText(err error) string {
	if err == nil {
		return ""
	}
	return status.From(err).Error()
}

// The MAIL/RCPT argument cases of 01-smtp-mail-rcpt-errors.txt and
// 01-smtp-rcpt-local-and-relay.txt, with the reply sendmail gave when the
// address itself was the cause.
func TestParsePath(t *testing.T) {
	tests := []struct {
		arg    string
		kind   PathKind
		want   string // String()
		flags  Flags
		params string
		err    string
	}{
		{arg: "<alice@localhost>", want: "alice@localhost", flags: Bracketed},
		{arg: " <alice@localhost>", want: "alice@localhost", flags: Bracketed},
		{arg: "alice@localhost", want: "alice@localhost"},
		{arg: "<alice@localhost", err: "553 5.0.0 <alice@localhost... Unbalanced '<'"},
		{arg: "<alice@localhost SIZE=10", err: "553 5.0.0 <alice@localhost SIZE=10... Unbalanced '<'"},
		{arg: "alice@localhost>", err: "553 5.0.0 alice@localhost>... Unbalanced '>'"},
		{arg: "<<alice@localhost>>", want: "alice@localhost", flags: Bracketed},
		{arg: "<a b@localhost>", want: "a.b@localhost", flags: Bracketed},
		{arg: "<alice@localhost> FOO=bar", want: "alice@localhost", flags: Bracketed, params: "FOO=bar"},
		{arg: "<alice@localhost> BODY=8BITMIME SIZE=100 RET=HDRS ENVID=QQ123", want: "alice@localhost", flags: Bracketed,
			params: "BODY=8BITMIME SIZE=100 RET=HDRS ENVID=QQ123"},
		{arg: "<@route,@other:alice@localhost>", want: "@route,@other:alice@localhost", flags: Bracketed | SourceRoute},
		{arg: "<alice@[127.0.0.1]>", want: "alice@[127.0.0.1]", flags: Bracketed | DomainLiteral},
		{arg: "<alice>", want: "alice", flags: Bracketed},
		{arg: `<"quoted local"@localhost>`, want: `"quoted local"@localhost`, flags: Bracketed | QuotedLocal},
		{arg: `<"a@b"@localhost>`, want: `"a@b"@localhost`, flags: Bracketed | QuotedLocal | QuotedSpecial},
		{arg: "<>", want: "", flags: Bracketed},
		{arg: "<>", kind: Recipient, err: "553 5.0.0 <>... User address required"},
		{arg: "<> NOTIFY=NEVER", kind: Recipient, err: "553 5.0.0 <>... User address required"},
		{arg: "<alice%remote.example@localhost>", kind: Recipient, want: "alice%remote.example@localhost", flags: Bracketed | PercentHack},
		{arg: "<remote.example!alice@localhost>", kind: Recipient, want: "remote.example!alice@localhost", flags: Bracketed | BangPath},
		{arg: "<@localhost:alice@remote.example>", kind: Recipient, want: "@localhost:alice@remote.example", flags: Bracketed | SourceRoute},
		{arg: "<a@b@c>", want: "a%b@c", flags: Bracketed | PercentHack},
		{arg: "<Postmaster@[127.0.0.1]> ORCPT=rfc822;x", kind: Recipient, want: "Postmaster@[127.0.0.1]", flags: Bracketed | DomainLiteral, params: "ORCPT=rfc822;x"},
		{arg: "<a(comment)@b>", want: "a@b", flags: Bracketed},
		{arg: "<a(b@c>", err: "553 5.0.0 <a(b@c>... Unbalanced '('"},
		{arg: `<"a@c>`, err: `553 5.0.0 <"a@c>... Unbalanced '"'`},
		{arg: "<a)@c>", err: "553 5.0.0 <a)@c>... Unbalanced ')'"},
		{arg: "<@x>", err: "553 5.1.3 <@x>... Invalid route address"},
		{arg: "<|/bin/sh>", kind: Recipient, want: "|/bin/sh", flags: Bracketed | Program},
		// control characters (sendmail's hasctrlchar), shown as '?'
		{arg: "<a\x01b@c>", err: `501 5.1.7 Syntax error in mailbox address "a?b@c" (non-printable character)`},
		{arg: "<a@c\x7f>", kind: Recipient, err: `501 5.1.3 Syntax error in mailbox address "a@c?" (non-printable character)`},
		{arg: "<a\x00b\x1f@c> SIZE=1", err: `501 5.1.7 Syntax error in mailbox address "a?b?@c" (non-printable character)`},
		{arg: "<\"a\x01b\"@c>", want: "\"a\x01b\"@c", flags: Bracketed | QuotedLocal},
		{arg: "<a\\\x01b@c>", want: "a\\\x01b@c", flags: Bracketed},
		{arg: "<a\tb@c>", want: "a.b@c", flags: Bracketed}, // a tab is white space
		// CR, LF and NUL: refused even quoted or escaped (stricter than sendmail)
		{arg: "<a\rb@c>", err: `501 5.1.7 Syntax error in mailbox address "a?b@c" (non-printable character)`},
		{arg: "<a@c>\rRCPT TO:<x@y>", kind: Recipient, err: `501 5.1.3 Syntax error in mailbox address "a@c>?RCPT" (non-printable character)`},
		{arg: "<\"a\rb\"@c>", kind: Recipient, err: `501 5.1.3 Syntax error in mailbox address ""a?b"@c" (non-printable character)`},
		{arg: "<a\\\nb@c>", err: `501 5.1.7 Syntax error in mailbox address "a\?b@c" (non-printable character)`},
		{arg: "<\"a\x00b\"@c>", err: `501 5.1.7 Syntax error in mailbox address ""a?b"@c" (non-printable character)`},
		{arg: "a\r@c", err: `501 5.1.7 Syntax error in mailbox address "a?@c" (non-printable character)`},
		{arg: "\\\r", err: `501 5.1.7 Syntax error in mailbox address "\?" (non-printable character)`},
		{arg: "<a@c> SIZE=1\r", err: `501 5.1.7 Syntax error in mailbox address "<a@c> SIZE=1?" (non-printable character)`},
	}
	for _, tt := range tests {
		a, params, err := ParsePath(tt.arg, tt.kind)
		if got := errText(err); got != tt.err {
			t.Errorf("ParsePath(%q) error = %q, want %q", tt.arg, got, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		if a.String() != tt.want || a.Flags != tt.flags || params != tt.params {
			t.Errorf("ParsePath(%q) = %q flags %b params %q, want %q flags %b params %q",
				tt.arg, a.String(), a.Flags, params, tt.want, tt.flags, tt.params)
		}
	}
	if _, _, err := ParsePath("  ", Sender); err != ErrNoPath {
		t.Errorf("ParsePath(blank) = %v, want ErrNoPath", err)
	}
	for _, arg := range []string{"<>", "<@a:>"} {
		if _, _, err := ParsePath(arg, Recipient); !errors.Is(err, ErrNoUser) {
			t.Errorf("ParsePath(%q, Recipient) = %v, want ErrNoUser", arg, err)
		}
	}
	if _, _, err := ParsePath("<a@b", Recipient); errors.Is(err, ErrNoUser) {
		t.Errorf("an unbalanced path is not ErrNoUser")
	}
}

func TestParsePathRaw(t *testing.T) {
	a, _, err := ParsePath(" <<alice@localhost>>  SIZE=1", Sender)
	if err != nil || a.Raw != "<<alice@localhost>>" || a.Path() != "<alice@localhost>" {
		t.Fatalf("got %+v, %v", a, err)
	}
}

// The three over-long addresses of 01-smtp-long-address-and-data-lines.txt:
// the capture abbreviates what the client sent, so the inputs are rebuilt
// from their stated lengths; the replies are compared byte for byte.
func TestTokenTooLong(t *testing.T) {
	f, err := os.Open("testdata/token-too-long.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		want = append(want, sc.Text())
	}
	args := []struct {
		arg  string
		kind PathKind
	}{
		{"<" + strings.Repeat("a", 300) + "@client.example>", Sender},
		{"<" + strings.Repeat("b", 1100) + "@client.example>", Sender},
		{"<" + strings.Repeat("c", 300) + "@localhost>", Recipient},
	}
	if len(want) != len(args) {
		t.Fatalf("golden has %d lines", len(want))
	}
	for i, a := range args {
		_, _, err := ParsePath(a.arg, a.kind)
		if got := errText(err); got != want[i] {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want[i])
		}
	}
	// 256 bytes is still one token; 257 is not.
	if _, _, err := ParsePath("<"+strings.Repeat("d", 256)+"@x>", Sender); err != nil {
		t.Errorf("256-byte token: %v", err)
	}
	if _, _, err := ParsePath("<"+strings.Repeat("d", 257)+"@x>", Sender); err == nil {
		t.Error("257-byte token accepted")
	}
	// sendmail 8.17's MAXATOM: 1000 tokens pass (brackets count), 1002 do not.
	if _, _, err := ParsePath("<"+strings.Repeat("d.", 498)+"@x>", Sender); err != nil {
		t.Errorf("1000 tokens: %v", err)
	}
	if _, _, err := ParsePath("<"+strings.Repeat("d.", 499)+"@x>", Sender); !strings.Contains(errText(err), "prescan: too many tokens") {
		t.Errorf("1002 tokens: %v", err)
	}
}

func TestShorten(t *testing.T) {
	s := strings.Repeat("x", 202)
	if Shorten(s) != s {
		t.Error("202 bytes shortened")
	}
	s = strings.Repeat("a", 100) + "MIDDLE" + strings.Repeat("b", 100)
	if got := Shorten(s); got != strings.Repeat("a", 100)+"..."+strings.Repeat("b", 100) {
		t.Errorf("Shorten = %q", got)
	}
}

// Addresses as the command line, -bv and aliases give them
// (04-sendmail-bv-each.txt, 06-cmdline-behaviour.txt).
func TestParse(t *testing.T) {
	tests := []struct {
		in    string
		want  Address
		err   string
		local string // LocalUnquoted
	}{
		{in: "alice", want: Address{Raw: "alice", Local: "alice"}},
		{in: "Alice Example <alice@localhost>", want: Address{Raw: "Alice Example <alice@localhost>", Name: "Alice Example",
			Local: "alice", Domain: "localhost", Flags: Bracketed}},
		{in: `"Example, Alice" <alice@localhost>`, want: Address{Raw: `"Example, Alice" <alice@localhost>`, Name: "Example, Alice",
			Local: "alice", Domain: "localhost", Flags: Bracketed}},
		{in: "alice@localhost (Alice Example)", want: Address{Raw: "alice@localhost (Alice Example)", Name: "Alice Example",
			Local: "alice", Domain: "localhost"}},
		{in: "<bob@refhost.example.org>", want: Address{Raw: "<bob@refhost.example.org>", Local: "bob", Domain: "refhost.example.org", Flags: Bracketed}},
		{in: "<bad", err: "553 5.0.0 <bad... Unbalanced '<'"},
		{in: "", want: Address{Null: true}},
		{in: "/tmp/direct-file", want: Address{Raw: "/tmp/direct-file", Local: "/tmp/direct-file", Flags: File}},
		{in: "|/bin/true", want: Address{Raw: "|/bin/true", Local: "|/bin/true", Flags: Program}},
		{in: `"|/usr/bin/logger -t to-prog -p mail.info"`, want: Address{Raw: `"|/usr/bin/logger -t to-prog -p mail.info"`,
			Local: `"|/usr/bin/logger -t to-prog -p mail.info"`, Flags: Program}, local: "|/usr/bin/logger -t to-prog -p mail.info"},
		{in: "host!user", want: Address{Raw: "host!user", Local: "host!user", Flags: BangPath}},
		{in: `"quoted \" local"@x`, want: Address{Raw: `"quoted \" local"@x`, Local: `"quoted \" local"`, Domain: "x", Flags: QuotedLocal},
			local: `quoted " local`},
		{in: "user@[IPv6:::1]", want: Address{Raw: "user@[IPv6:::1]", Local: "user", Domain: "[IPv6:::1]", Flags: DomainLiteral}},
		{in: "a . b @ x . y", want: Address{Raw: "a . b @ x . y", Local: "a.b", Domain: "x.y"}},
	}
	for _, tt := range tests {
		a, err := Parse(tt.in)
		if got := errText(err); got != tt.err {
			t.Errorf("Parse(%q) error = %q, want %q", tt.in, got, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		if !reflect.DeepEqual(a, tt.want) {
			t.Errorf("Parse(%q) =\n %+v\nwant\n %+v", tt.in, a, tt.want)
		}
		if tt.local != "" && a.LocalUnquoted() != tt.local {
			t.Errorf("Parse(%q).LocalUnquoted() = %q, want %q", tt.in, a.LocalUnquoted(), tt.local)
		}
	}
}
