package deliver

import (
	"bufio"
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testTime is the delivery time of the reference capture, in UTC.
var testTime = time.Date(2026, 11, 25, 4, 34, 12, 0, time.UTC)

// golden compares got with testdata/<name>, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// splitMessage splits raw text at the first empty line the way callers do.
func splitMessage(raw string) *Message {
	h, b, ok := strings.Cut(raw, "\n\n")
	if !ok {
		return &Message{Header: []byte(raw)}
	}
	h += "\n"
	return &Message{Header: []byte(h), Body: strings.NewReader(b), BodySize: int64(len(b))}
}

func TestFromLine(t *testing.T) {
	tests := []struct {
		sender string
		when   time.Time
		want   string
	}{
		{"sender@client.example", testTime, "From sender@client.example Wed Nov 25 04:34:12 2026\n"},
		{"", testTime, "From MAILER-DAEMON Wed Nov 25 04:34:12 2026\n"},
		{"a@b", time.Date(2026, 11, 5, 9, 3, 7, 0, time.UTC), "From a@b Thu Nov  5 09:03:07 2026\n"},
		{"\"john doe\"@x", testTime, "From \"john_doe\"@x Wed Nov 25 04:34:12 2026\n"},
		{"evil\nFrom x", testTime, "From evil_From_x Wed Nov 25 04:34:12 2026\n"},
	}
	for _, tt := range tests {
		if got := string(FromLine(tt.sender, tt.when)); got != tt.want {
			t.Errorf("FromLine(%q) = %q, want %q", tt.sender, got, tt.want)
		}
	}
}

func TestRenderGolden(t *testing.T) {
	ref, err := os.ReadFile("testdata/reference-input.txt")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		sender string
		raw    string
		f      format
	}{
		{"reference", "sender@client.example", string(ref), mboxFormat},
		{"reference-program", "sender@client.example", string(ref), programFormat},
		{"no-final-newline", "sender@client.example", strings.TrimSuffix(string(ref), "\n"), mboxFormat},
		{"null-sender", "", "Subject: bounce\n\nbody\n", mboxFormat},
		{"empty-body", "a@b", "Subject: nothing\n\n", mboxFormat},
		{"header-only", "a@b", "Subject: no separator\nX: y", mboxFormat},
		{"from-in-header", "a@b", "From someone Mon Jan  1 00:00:00 2001\nSubject: x\n\nFrom\nFrom \n>From x\n", mboxFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := splitMessage(tt.raw)
			var buf bytes.Buffer
			if err := render(&buf, FromLine(tt.sender, testTime), m.Header, m.bodyReader(), tt.f); err != nil {
				t.Fatal(err)
			}
			golden(t, "mbox/"+tt.name+".golden", buf.Bytes())
		})
	}
}

// TestRenderAgainstReference checks the one deliberate difference from the
// stock mail.local capture: a "From " line that follows a non-empty line is
// quoted too.
func TestRenderAgainstReference(t *testing.T) {
	ref, _ := os.ReadFile("testdata/reference-input.txt")
	stock, _ := os.ReadFile("testdata/reference-stock-output.txt")
	m := splitMessage(string(ref))
	var buf bytes.Buffer
	for range 2 {
		if err := render(&buf, FromLine("sender@client.example", testTime), m.Header, m.bodyReader(), mboxFormat); err != nil {
			t.Fatal(err)
		}
	}
	got, want := strings.Split(buf.String(), "\n"), strings.Split(string(stock), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d lines, reference has %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] && !(want[i] == "From after a non-empty line." && got[i] == ">"+want[i]) {
			t.Errorf("line %d: %q, reference %q", i+1, got[i], want[i])
		}
	}
}

func TestQuoteLongLines(t *testing.T) {
	// A "From " that starts a 64 KiB buffer in the middle of a long line is
	// not at the start of a line and must stay as it is.
	long := strings.Repeat("x", bufSize) + "From the middle\nFrom start\n"
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	if err := copyLines(bw, strings.NewReader(long), true); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	want := strings.Repeat("x", bufSize) + "From the middle\n>From start\n"
	if out.String() != want {
		t.Errorf("long line quoting wrong around the buffer boundary")
	}
}

// FuzzQuote checks the quoting invariants on any input: no line of the
// output begins "From ", removing one ">" from the quoted lines gives the
// input back, and the output ends with a newline.
func FuzzQuote(f *testing.F) {
	f.Add([]byte("From x\nFrom y\n>From z\n"))
	f.Add([]byte("no newline"))
	f.Add([]byte("\n\nFrom"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		bw := bufio.NewWriterSize(&out, 16)
		if err := copyLines(bw, bytes.NewReader(in), true); err != nil {
			t.Fatal(err)
		}
		bw.Flush()
		o := out.Bytes()
		if len(in) == 0 {
			if len(o) != 0 {
				t.Fatalf("empty input gave %q", o)
			}
			return
		}
		if o[len(o)-1] != '\n' {
			t.Fatalf("no final newline: %q", o)
		}
		var back []byte
		for line := range bytes.Lines(o) {
			if bytes.HasPrefix(line, []byte("From ")) {
				t.Fatalf("unquoted From_ line in %q", o)
			}
			if bytes.HasPrefix(line, []byte(">From ")) {
				line = line[1:]
			}
			back = append(back, line...)
		}
		// Input lines that began ">From " were not quoted and come back
		// one ">" short; compare line by line with that allowance.
		inLines := bytes.Split(bytes.TrimSuffix(appendNewline(in), []byte("\n")), []byte("\n"))
		backLines := bytes.Split(bytes.TrimSuffix(back, []byte("\n")), []byte("\n"))
		if len(inLines) != len(backLines) {
			t.Fatalf("line count %d, want %d", len(backLines), len(inLines))
		}
		for i := range inLines {
			if !bytes.Equal(inLines[i], backLines[i]) && !bytes.Equal(inLines[i], append([]byte(">"), backLines[i]...)) {
				t.Fatalf("line %d: %q from %q", i, backLines[i], inLines[i])
			}
		}
	})
}

func appendNewline(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(append([]byte{}, b...), '\n')
	}
	return b
}

func TestUnixFromLine(t *testing.T) {
	when := time.Date(2026, 11, 5, 4, 26, 40, 0, time.UTC)
	tests := []struct{ template, sender, want string }{
		{DefaultUnixFromLine, "sender@client.example", "From sender@client.example Thu Nov  5 04:26:40 2026\n"},
		{DefaultUnixFromLine, "", "From MAILER-DAEMON Thu Nov  5 04:26:40 2026\n"},
		{"From $g  $d remote from relay", "a b@x", "From a_b@x  Thu Nov  5 04:26:40 2026 remote from relay\n"},
		{"From $g $$5 $x\nX", "a@x", "From a@x $5 $x X\n"},
	}
	for _, tt := range tests {
		if got := string(UnixFromLine(tt.template, tt.sender, when)); got != tt.want {
			t.Errorf("UnixFromLine(%q, %q) = %q, want %q", tt.template, tt.sender, got, tt.want)
		}
	}
	if got, want := string(UnixFromLine(DefaultUnixFromLine, "s@x", when)), string(FromLine("s@x", when)); got != want {
		t.Errorf("default template %q differs from FromLine %q", got, want)
	}
}
