package test

import (
	"os"
	"strings"
	"testing"
)

// TestHelpFile: HELP answers from HelpFile in sendmail's helpfile format
// (topic prefix match, macros with "#vers 2"); without a readable one,
// from the built-in texts (issue 8: HelpFile was counted as honoured but
// never read).
func TestHelpFile(t *testing.T) {
	help := t.TempDir() + "/helpfile"
	os.WriteFile(help, []byte("#\tlocal help\n#vers\t2\n"+
		"smtp\tThis is the $j mail service\n"+
		"smtp\tTopics: MAIL RCPT\n"+
		"mail\tMAIL From:<you>\n"+
		"rcpt\tRCPT To:<them>\n"+
		"rset\tRSET clears\n"), 0o644)
	session := "HELP\r\nHELP MAIL\r\nHELP r\r\nHELP nosuchtopic\r\nQUIT\r\n"
	r := newRoot(t, "O HelpFile="+help)
	got := run(t, binary(t), session, "-C", r.cf, "-bs")
	want := strings.Join([]string{
		"214-2.0.0 This is the posthorn.test mail service",
		"214-2.0.0 Topics: MAIL RCPT",
		"214 2.0.0 End of HELP info",
		"214-2.0.0 MAIL From:<you>",
		"214 2.0.0 End of HELP info",
		"214-2.0.0 RCPT To:<them>",
		"214-2.0.0 RSET clears",
		"214 2.0.0 End of HELP info",
		`504 5.3.0 HELP topic "nosuchtopi" unknown`,
	}, "\r\n")
	if !strings.Contains(got.stdout, want) {
		t.Errorf("HELP from %s:\n%s\nwant:\n%s", help, got.stdout, want)
	}

	// A HelpFile that is not there: the built-in sendmail texts.
	r2 := newRoot(t, "O HelpFile="+t.TempDir()+"/missing")
	got = run(t, binary(t), "HELP\r\nQUIT\r\n", "-C", r2.cf, "-bs")
	if !strings.Contains(got.stdout, "214-2.0.0 This is posthorn ") || !strings.Contains(got.stdout, "214-2.0.0 For more info use \"HELP <topic>\".") {
		t.Errorf("HELP without the file:\n%s", got.stdout)
	}
}

// TestUnixFromLine: /file and |program deliveries start with UnixFromLine
// expanded; the mailbox keeps mail.local's From_ line (issue 8).
func TestUnixFromLine(t *testing.T) {
	r := newRoot(t, "O UnixFromLine=From $g  $d remote from $j", "O DefaultUser=root:root")
	archive, piped := r.path("mail/archive.mbox"), r.path("mail/piped")
	writeAliases(t, r, "archive: "+archive+"\npiped: \"|/bin/sh -c 'cat > "+piped+"'\"\n")
	got := run(t, binary(t), "Subject: from line\n\nbody\n", "-C", r.cf, "-odi", "-f", "sender@client.example", "archive", "piped", "root")
	if got.code != 0 {
		t.Fatalf("submission: exit %d %q", got.code, got.stderr)
	}
	for _, p := range []string{archive, piped} {
		data, err := os.ReadFile(p)
		first, _, _ := strings.Cut(string(data), "\n")
		if err != nil || !strings.HasPrefix(first, "From sender@client.example  ") || !strings.HasSuffix(first, " remote from posthorn.test") {
			t.Errorf("%s: first line %q (%v)", p, first, err)
		}
	}
	box, _ := os.ReadFile(r.path("mail/root"))
	first, _, _ := strings.Cut(string(box), "\n")
	if !strings.HasPrefix(first, "From sender@client.example ") || strings.Contains(first, "remote from") {
		t.Errorf("mailbox From_ line %q", first)
	}
}

// TestMeTooReported: posthorn always delivers to a sender in an alias
// list (MeToo=True, sendmail's default); MeToo=False is reported as not
// interpreted instead of being silently counted as honoured (issue 8).
func TestMeTooReported(t *testing.T) {
	off := run(t, binary(t), "", "-C", newRoot(t, "O MeToo=False").cf, "-d0.1", "-bt")
	if !strings.Contains(off.stdout, "Not interpreted: ") || !strings.Contains(off.stdout, "option MeToo=False") {
		t.Errorf("MeToo=False not reported:\n%s", off.stdout)
	}
	on := run(t, binary(t), "", "-C", newRoot(t, "O MeToo=True").cf, "-om", "-d0.1", "-bt")
	if strings.Contains(on.stdout, "MeToo") && strings.Contains(on.stdout, "Not interpreted: ") &&
		strings.Contains(on.stdout[strings.Index(on.stdout, "Not interpreted: "):], "MeToo") {
		t.Errorf("MeToo=True reported as not interpreted:\n%s", on.stdout)
	}
}
