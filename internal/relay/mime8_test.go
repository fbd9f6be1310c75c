package relay

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// convert runs the converter on a header and body and returns the lines
// written, with LF line ends and the dot-stuffing undone.
func convert(t testing.TB, header, body string) string {
	t.Helper()
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	lw := newLineWriter(w, smtpLineLimit)
	if err := convert8to7(lw, []byte(header), strings.NewReader(body), int64(len(body)),
		convOptions{host: "refhost.example.org", qid: "QID"}); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	s := strings.ReplaceAll(out.String(), "\r\n", "\n")
	return strings.ReplaceAll("\n"+s, "\n..", "\n.")[1:]
}

func TestConvertQuotedPrintable(t *testing.T) {
	long := strings.Repeat("a", 100)
	for _, tc := range []struct{ name, body, want string }{
		{"8-bit", "caf\xc3\xa9 ok, and some more seven-bit text\n", "caf=C3=A9 ok, and some more seven-bit text\n"},
		{"trailing blanks", "a line with a blank \nand a tab\t\n\xe9\n", "a line with a blank=20\nand a tab=09\n=E9\n"},
		{"equals", "x=1 \xe9\n", "x=3D1 =E9\n"},
		{"lone dot", "\xe9\n.\n", "=E9\n=2E\n"},
		{"soft break after 73", long + "\xe9\n", strings.Repeat("a", 73) + "=\n" + strings.Repeat("a", 27) + "=E9\n"},
		{"no final newline", "\xe9tait", "=E9tait\n"},
		{"control", "tab\there \x01 cr\r\xe9\n", "tab\there =01 cr=0D=E9\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// seven-bit text first keeps the share of 8-bit octets
			// under sendmail's one in eight (else base64)
			pad := "seven-bit text to keep the ratio of 8-bit octets low\n"
			got := convert(t, "Subject: t\n", pad+tc.body)
			head := "Subject: t\nMIME-Version: 1.0\nContent-Type: text/plain; charset=unknown-8bit\n" +
				"Content-Transfer-Encoding: quoted-printable\nX-MIME-Autoconverted: from 8bit to quoted-printable by refhost.example.org id QID\n\n"
			if want := head + pad + tc.want; got != want {
				t.Errorf("got\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// sendmail's soft break keeps a line from starting with a dot.
func TestConvertQuotedPrintableDots(t *testing.T) {
	body := strings.Repeat("a", 73) + "." + strings.Repeat("b", 5) + "\xe9\n"
	got := convert(t, "MIME-Version: 1.0\n", body)
	i := strings.Index(got, "\n\n")
	lines := strings.Split(strings.TrimSuffix(got[i+2:], "\n"), "\n")
	for _, l := range lines {
		if len(l) > 76 {
			t.Errorf("line of %d characters", len(l))
		}
	}
	if strings.Join(lines, "") == "" || !strings.HasSuffix(lines[len(lines)-1], "bbbbb=E9") {
		t.Errorf("lines %q", lines)
	}
	decoded := strings.ReplaceAll(strings.Join(lines, "\n"), "=\n", "")
	if decoded != strings.Repeat("a", 73)+".bbbbb=E9" {
		t.Errorf("soft breaks lose text: %q", decoded)
	}
}

func TestConvertBase64(t *testing.T) {
	body := strings.Repeat("\xff\xfe\xfd", 40) + "\n"
	got := convert(t, "MIME-Version: 1.0\nContent-Type: application/x-thing\nContent-Transfer-Encoding: 8bit\n", body)
	want := "MIME-Version: 1.0\nContent-Type: application/x-thing\nContent-Transfer-Encoding: base64\n" +
		"X-MIME-Autoconverted: from 8bit to base64 by refhost.example.org id QID\n\n"
	if !strings.HasPrefix(got, want) {
		t.Fatalf("got\n%s", got)
	}
	lines := strings.Split(strings.TrimSuffix(got[len(want):], "\n"), "\n")
	if len(lines) != 3 || len(lines[0]) != 72 || len(lines[1]) != 72 {
		t.Errorf("lines %q", lines)
	}
	// the line end is encoded as CRLF
	if !strings.HasSuffix(lines[2], "DQo=") {
		t.Errorf("last line %q", lines[2])
	}
}

func TestConvertMultipart(t *testing.T) {
	header := "Subject: parts\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"=_b1\"\n"
	body := "prologue \xe9\n" +
		"--=_b1\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nsome text with one \xc3\xa9 in it, not more\n" +
		"--=_b1\nContent-Type: text/plain\nContent-Transfer-Encoding: 7bit\n\nplain\n\n" +
		"--=_b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAEC\xff\n" +
		"--=_b1\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner \xe9t\xe9 body with more than eight seven-bit octets\n" +
		"--=_b1--\nepilogue \xe9\n"
	want := "Subject: parts\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"=_b1\"\n\n" +
		"prologue i\n" +
		"--=_b1\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n" +
		"X-MIME-Autoconverted: from 8bit to quoted-printable by refhost.example.org id QID\n\nsome text with one =C3=A9 in it, not more\n" +
		"--=_b1\nContent-Type: text/plain\nContent-Transfer-Encoding: 7bit\n\nplain\n\n" +
		"--=_b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAEC\xff\n" +
		"--=_b1\nContent-Type: message/rfc822\n\nSubject: inner\nMIME-Version: 1.0\n" +
		"Content-Transfer-Encoding: quoted-printable\nX-MIME-Autoconverted: from 8bit to quoted-printable by refhost.example.org id QID\n\n" +
		"inner =E9t=E9 body with more than eight seven-bit octets\n" +
		"--=_b1--\nepilogue i\n"
	if got := convert(t, header, body); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// multipart/signed and encoded parts pass untouched: converting them
// would break the signature or the encoding.
func TestConvertPassThrough(t *testing.T) {
	header := "MIME-Version: 1.0\nContent-Type: multipart/signed; boundary=s; protocol=\"application/pgp-signature\"\nContent-Transfer-Encoding: 8bit\n"
	body := "--s\nContent-Type: text/plain\n\nsigned \xe9\n--s--\n"
	got := convert(t, header, body)
	if want := "MIME-Version: 1.0\nContent-Type: multipart/signed; boundary=s; protocol=\"application/pgp-signature\"\n" +
		"Content-Transfer-Encoding: 8bit\n\n" + body; got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

// Malformed nesting: an outer boundary ends the inner multipart, which is
// closed properly.
func TestConvertNestedBoundaries(t *testing.T) {
	header := "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=outer\n"
	body := "--outer\nContent-Type: multipart/alternative; boundary=inner\n\n--inner\n\ntext \xe9 and more seven-bit text here\n--outer--\n"
	got := convert(t, header, body)
	for _, want := range []string{"--inner\n", "text =E9 and more", "\n--inner--\n--outer--\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}

func TestConvertMissingBoundaryIsLeaf(t *testing.T) {
	got := convert(t, "MIME-Version: 1.0\nContent-Type: multipart/mixed\n", "--x\n\nhello \xe9 world, seven-bit mostly\n")
	if !strings.Contains(got, "Content-Transfer-Encoding: quoted-printable") || !strings.Contains(got, "hello =E9 world") {
		t.Errorf("got\n%s", got)
	}
}

func TestParseContentType(t *testing.T) {
	for _, tc := range []struct {
		in, typ, sub, boundary string
	}{
		{`multipart/mixed; boundary="a;b"`, "multipart", "mixed", "a;b"},
		{`Multipart/Alternative (comment); BOUNDARY=xyz`, "multipart", "alternative", "xyz"},
		{`text/plain;charset=us-ascii`, "text", "plain", ""},
		{`text`, "text", "-none-", ""},
		{``, "-none-", "-none-", ""},
		{`multipart/mixed; boundary="q\"x"`, "multipart", "mixed", `q"x`},
	} {
		typ, sub, p := parseContentType(tc.in)
		if typ != tc.typ || sub != tc.sub || p["boundary"] != tc.boundary {
			t.Errorf("%q: %s/%s %q", tc.in, typ, sub, p["boundary"])
		}
	}
}

// The converter reads untrusted MIME: it must end, never panic, and leave
// a plain 8-bit text 7-bit.
func FuzzConvert8to7(f *testing.F) {
	f.Add("Content-Type: text/plain\n", "caf\xc3\xa9\n")
	f.Add("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n", "--b\n\n\xe9\n--b\nContent-Type: message/rfc822\n\nSubject: x\n\n\xff\n--b--\n")
	f.Add("Content-Type: multipart/mixed; boundary=\"\"\n", "--\n--\n")
	f.Add("Content-Type: message/rfc822\n", "Content-Type: multipart/mixed; boundary=c\n\n--c\n--c--\n")
	f.Fuzz(func(t *testing.T, header, body string) {
		if len(header) > 4096 || len(body) > 1<<16 {
			return
		}
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		lw := newLineWriter(w, smtpLineLimit)
		if err := convert8to7(lw, []byte(header), strings.NewReader(body), int64(len(body)), convOptions{host: "h", qid: "q"}); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		if out.Len() > 8*(len(header)+len(body))+4096 {
			t.Fatalf("%d bytes out of %d", out.Len(), len(header)+len(body))
		}
		for _, l := range strings.Split(out.String(), "\r\n") {
			if len(l) > smtpLineLimit+1 {
				t.Fatalf("line of %d", len(l))
			}
		}
		if !strings.Contains(strings.ToLower(header+body), "content-") && !hasHigh([]byte(header)) {
			i := bytes.Index(out.Bytes(), []byte("\r\n\r\n"))
			if i >= 0 && hasHigh(out.Bytes()[i:]) {
				t.Fatalf("8-bit left in a plain text body:\n%q", out.String())
			}
		}
	})
}

// Many tiny parts: each is scanned and read again from the reader's
// window, not from the file.
func BenchmarkConvertTinyParts(b *testing.B) {
	header := "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n"
	body := strings.Repeat("--b\n\n\xe9\n", 8000) + "--b--\n"
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		convert(b, header, body)
	}
}

func TestPosReader(t *testing.T) {
	body := strings.Repeat("x", 20000) + "\nshort\nend"
	p := newPosReader(strings.NewReader(body), int64(len(body)))
	var got []string
	for {
		b, eol, err := p.next()
		if err != nil {
			break
		}
		got = append(got, strings.TrimSuffix(string(b), "\n")+map[bool]string{true: "$", false: "|"}[eol])
	}
	if len(got) != 4 || len(got[0]) != 16<<10+1 || got[2] != "short$" || got[3] != "end|" || p.pos != int64(len(body)) {
		t.Errorf("%d pieces: %q...", len(got), got[2:])
	}
	p.seek(20001)
	if b, eol, _ := p.next(); string(b) != "short\n" || !eol {
		t.Errorf("after seek: %q", b)
	}
}
