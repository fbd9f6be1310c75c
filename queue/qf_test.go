package queue

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// referenceQF lists every qf captured from real sendmail 8.17 (extracted
// from the cat -A dumps of the reference into real bytes).
func referenceQF(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("../testdata/queues/*/qf*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no reference qf files: %v", err)
	}
	return files
}

func TestRoundTripReference(t *testing.T) {
	for _, f := range referenceQF(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		j, err := Parse(filepath.Base(f)[2:], data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if got := Marshal(j); !bytes.Equal(got, data) {
			t.Errorf("%s: round trip differs\n got: %q\nwant: %q", f, got, data)
		}
	}
}

func TestParseFields(t *testing.T) {
	data, err := os.ReadFile("../testdata/queues/several/qf6AP4TZKs006657")
	if err != nil {
		t.Fatal(err)
	}
	j, err := Parse("6AP4TZKs006657", data)
	if err != nil {
		t.Fatal(err)
	}
	if j.Version != 8 || j.Created.Unix() != 1795580975 || j.Attempts != 1 || j.Priority != 60251 {
		t.Errorf("envelope numbers: %+v", j)
	}
	if j.BodyType != "7BIT" || j.Flags != "bdns" || j.Sender != "<bob@refhost.example.org>" || j.EnvID != "QQ314159" {
		t.Errorf("envelope strings: %+v", j)
	}
	if !j.HasFlag(FlagRetHdrs) || j.HasFlag(FlagWarned) {
		t.Errorf("flags %q", j.Flags)
	}
	want := []Recipient{
		{FinalRcpt: "RFC822; nobody@nomx.example", Flags: "PN", Addr: "<nobody@nomx.example>"},
		{ORcpt: "rfc822;someone@remote.example", FinalRcpt: "RFC822; someone@remote.example", Flags: "PNSFD", Addr: "<someone@remote.example>"},
	}
	if !reflect.DeepEqual(j.Recipients, want) {
		t.Errorf("recipients\n got %+v\nwant %+v", j.Recipients, want)
	}
	if len(j.Macros) != 4 || j.Macros[0] != (Macro{"_", "localhost [127.0.0.1]"}) || j.Macros[3] != (Macro{"{daemon_flags}", ""}) {
		t.Errorf("macros %+v", j.Macros)
	}
	h := j.Headers[0]
	if h.Cond != "P" || h.Name != "Return-Path" || h.Value != " <\x81g>" {
		t.Errorf("header 0 %+v", h)
	}
	if v, _ := j.Get("received"); !strings.HasSuffix(v, "6AP4TZKs006657;\n\tWed, 25 Nov 2026 04:29:35 GMT") {
		t.Errorf("folded Received %q", v)
	}
}

func TestParseControllingUser(t *testing.T) {
	data, err := os.ReadFile("../testdata/queues/several/qf6AP4TZoV006667")
	if err != nil {
		t.Fatal(err)
	}
	j, err := Parse("6AP4TZoV006667", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Recipients) != 2 || j.Recipients[0].Ctl != "bob:1001:1001:carol" || j.Recipients[1].Ctl != "to-remote:8:0:to-remote" || !j.Recipients[1].HasFlag(RcptAlias) {
		t.Errorf("recipients %+v", j.Recipients)
	}
	if j.Auth != "root@refhost.example.org" || j.LastTry != (time.Time{}) {
		t.Errorf("auth %q lasttry %v", j.Auth, j.LastTry)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, reason string }{
		{"no terminator", "V8\nT1\nSa\nR:b\n", "incomplete"},
		{"after terminator", "V8\n.\nSx\n", "after end"},
		{"future version", "V9\n.\n", "greater than max"},
		{"bad time", "V8\nTx\n.\n", "bad time"},
		{"bad priority", "V8\nP1e3\n.\n", "bad priority"},
		{"rcpt without colon", "V8\nRabc\n.\n", "flags separator"},
		{"header without colon", "V8\nH??abc\n.\n", "colon"},
		{"lone continuation", "\tabc\n.\n", "continuation"},
		{"no final newline", "V8\n.", "incomplete"},
	} {
		_, err := Parse("x", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.reason)
		}
	}
}

func TestUnknownLinesKept(t *testing.T) {
	in := "V8\nT1\nK0\nN0\nP1\nSa\nXold charset\nR:b\nLlength\n\tcontinued\nR:c\nE junk\nH??To: b\n.\n"
	j, err := Parse("x", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(j.Extra, []string{"Xold charset"}) ||
		!reflect.DeepEqual(j.Recipients[1].Extra, []string{"Llength\n\tcontinued"}) ||
		!reflect.DeepEqual(j.Trailer, []string{"E junk"}) {
		t.Errorf("extra %q rcpt %q trailer %q", j.Extra, j.Recipients[1].Extra, j.Trailer)
	}
	if got := string(Marshal(j)); got != in {
		t.Errorf("round trip\n got %q\nwant %q", got, in)
	}
}

func TestMarshalNoInjection(t *testing.T) {
	j := &Job{Sender: "a\nRP:evil", Headers: []Header{{HasCond: true, Name: "Subject", Value: " x\nH??Bcc: evil"}},
		Recipients: []Recipient{{Flags: "P:F", Addr: "b\n.\n"}}}
	out := Marshal(j)
	k, err := Parse("x", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(k.Recipients) != 1 || len(k.Headers) != 1 {
		t.Errorf("injected lines:\n%s", out)
	}
}

func TestSetFlag(t *testing.T) {
	j := &Job{Flags: "bs"}
	j.SetFlag(FlagWarned, true)
	j.SetFlag(FlagRetParam, true)
	if j.Flags != "wbds" {
		t.Errorf("flags %q", j.Flags)
	}
	j.SetFlag(FlagDelBcc, false)
	if j.Flags != "wds" {
		t.Errorf("flags %q", j.Flags)
	}
}

func TestLongFoldedHeader(t *testing.T) {
	// 100,000 continuation lines: read in one piece, not by repeated
	// concatenation (which would take minutes).
	in := "V8\nSa\nR:b\nH??X-Long: a" + strings.Repeat("\n\tb", 100000) + "\n.\n"
	j, err := Parse("x", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if v := j.Headers[0].Value; len(v) != 2+3*100000 {
		t.Errorf("value length %d", len(v))
	}
	if string(Marshal(j)) != "V8\nT0\nK0\nN0\nP0\nSa\nR:b\nH??X-Long: a"+strings.Repeat("\n\tb", 100000)+"\n.\n" {
		t.Error("round trip")
	}
}
