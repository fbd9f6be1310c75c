package sts

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		name string
		body string
		want *Policy
		err  string
	}{
		{name: "RFC 8461 §3.2 example", body: "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
			want: &Policy{Mode: Enforce, MX: []string{"mail.example.com", "*.example.net", "backupmx.example.com"}, MaxAge: 604800 * time.Second,
				Lines: []string{"version: STSv1", "mode: enforce", "mx: mail.example.com", "mx: *.example.net", "mx: backupmx.example.com", "max_age: 604800"}}},
		{name: "LF, no final newline, spaces", body: "version:STSv1\nmode:  testing \nmx: MX.Example.COM.\nmax_age: 86400",
			want: &Policy{Mode: Testing, MX: []string{"mx.example.com"}, MaxAge: 86400 * time.Second,
				Lines: []string{"version:STSv1", "mode:  testing ", "mx: MX.Example.COM.", "max_age: 86400"}}},
		{name: "none without mx", body: "version: STSv1\nmode: none\nmax_age: 0\n",
			want: &Policy{Mode: None, Lines: []string{"version: STSv1", "mode: none", "max_age: 0"}}},
		{name: "unknown keys, duplicates: the first counts", body: "version: STSv1\nmode: testing\nmode: enforce\nfoo: bar\nmx: a.example\nmax_age: 10\nmax_age: 99\n\n",
			want: &Policy{Mode: Testing, MX: []string{"a.example"}, MaxAge: 10 * time.Second,
				Lines: []string{"version: STSv1", "mode: testing", "mode: enforce", "foo: bar", "mx: a.example", "max_age: 10", "max_age: 99"}}},
		{name: "largest max_age", body: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557600\n",
			want: &Policy{Mode: Enforce, MX: []string{"a.example"}, MaxAge: 31557600 * time.Second,
				Lines: []string{"version: STSv1", "mode: enforce", "mx: a.example", "max_age: 31557600"}}},
		{name: "no version", body: "mode: enforce\nmx: a.example\nmax_age: 1\n", err: "no version"},
		{name: "wrong version", body: "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", err: "version"},
		{name: "no mode", body: "version: STSv1\nmx: a.example\nmax_age: 1\n", err: "no mode"},
		{name: "bad mode", body: "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n", err: "mode"},
		{name: "no max_age", body: "version: STSv1\nmode: enforce\nmx: a.example\n", err: "no max_age"},
		{name: "negative max_age", body: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", err: "max_age"},
		{name: "max_age too large", body: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", err: "max_age"},
		{name: "max_age too long", body: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 00000000001\n", err: "max_age"},
		{name: "enforce without mx", body: "version: STSv1\nmode: enforce\nmax_age: 1\n", err: "no mx"},
		{name: "bad mx", body: "version: STSv1\nmode: enforce\nmx: *.com\nmax_age: 1\n", err: "mx"},
		{name: "mx with a wildcard inside", body: "version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n", err: "mx"},
		{name: "not key: value", body: "version: STSv1\nmode enforce\nmx: a.example\nmax_age: 1\n", err: "key: value"},
		{name: "HTML", body: "<html><body>not found</body></html>\n", err: "key: value"},
		{name: "NUL", body: "version: STSv1\x00\nmode: enforce\nmx: a.example\nmax_age: 1\n", err: "NUL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.body))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseTXT(t *testing.T) {
	for _, tt := range []struct {
		records []string
		id      string
		found   bool
		err     bool
	}{
		{[]string{"v=STSv1; id=20160831085700Z;"}, "20160831085700Z", true, false}, // RFC 8461 §3.1
		{[]string{"v=STSv1;id=abc"}, "abc", true, false},
		{[]string{"v=STSv1; id=abc; ext_1=x;"}, "abc", true, false},
		{[]string{"v=spf1 -all", "v=STSv1; id=x1"}, "x1", true, false},
		{[]string{"v=spf1 -all"}, "", false, false},
		{nil, "", false, false},
		{[]string{"v=STSv1; id=a", "v=STSv1; id=b"}, "", true, true},
		{[]string{"v=STSv1;"}, "", true, true},
		{[]string{"v=STSv1; id=has-dash"}, "", true, true},
		{[]string{"v=STSv1; id=" + strings.Repeat("a", 33)}, "", true, true},
		{[]string{"v=STSv10; id=a"}, "", true, true},
		{[]string{"v=STSv1; ; id=a"}, "", true, true},
		{[]string{"v=STSv1; id"}, "", true, true},
	} {
		id, found, err := ParseTXT(tt.records)
		if id != tt.id || found != tt.found || (err != nil) != tt.err {
			t.Errorf("%q: %q %v %v, want %q %v err=%v", tt.records, id, found, err, tt.id, tt.found, tt.err)
		}
	}
}

func TestMatchMX(t *testing.T) {
	for _, tt := range []struct {
		pattern, host string
		want          bool
	}{
		{"mail.example.com", "mail.example.com", true},
		{"mail.example.com", "MAIL.Example.com.", true},
		{"mail.example.com.", "mail.example.com", true},
		{"mail.example.com", "mail2.example.com", false},
		{"*.example.com", "mx1.example.com", true},
		{"*.example.com", "mx1.example.com.", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "a.b.example.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "mx1.example.net", false},
		{"*.example.com", "mx1example.com", false},
		{"example.com", "*.example.com", false},
		{"mail.example.com", "", false},
	} {
		if got := MatchMX(tt.pattern, tt.host); got != tt.want {
			t.Errorf("MatchMX(%q, %q) = %v", tt.pattern, tt.host, got)
		}
	}
	p := &Policy{MX: []string{"mail.example.com", "*.example.net"}}
	if !p.Matches("a.example.net") || p.Matches("example.net") || !p.Matches("mail.example.com") {
		t.Error("Policy.Matches")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n"))
	f.Add([]byte("version: STSv1\nmode: none\nmax_age: 0"))
	f.Add([]byte("mode: testing\n\n\nmx: x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		// A valid policy says what a sender needs, and reads back the same.
		if p.Mode == "" || p.MaxAge < 0 || p.MaxAge > MaxMaxAge*time.Second || (p.Mode != None && len(p.MX) == 0) {
			t.Fatalf("accepted %q as %+v", b, p)
		}
		q, err := Parse([]byte(p.String()))
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("%q: reparsed %+v, %v; was %+v", b, q, err, p)
		}
		for _, pat := range p.MX {
			if host, ok := strings.CutPrefix(pat, "*."); ok {
				if !p.Matches("x."+host) || p.Matches(host) {
					t.Fatalf("pattern %q", pat)
				}
			} else if !p.Matches(pat) {
				t.Fatalf("pattern %q does not match itself", pat)
			}
		}
	})
}

func FuzzParseTXT(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;", "v=spf1 -all")
	f.Add("v=STSv1;id=a;", "")
	f.Fuzz(func(t *testing.T, a, b string) {
		id, found, err := ParseTXT([]string{a, b})
		if err == nil && found && (id == "" || len(id) > 32 || !isAlnum(id)) {
			t.Fatalf("%q %q: id %q", a, b, id)
		}
	})
}
