package smtpd_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// heloCases are HELO/EHLO arguments and why sendmail 8.17 (srvrsmtp.c,
// AllowBogusHELO off) takes or refuses each; testdata/helo-replies.txt
// holds the replies, one per case (-update rewrites it).
var heloCases = []struct{ line, why string }{
	{"HELO", "no argument"},
	{"ehlo", "no argument: the reply names the command as typed"},
	{"HELO   ", "only white space is no argument"},
	{"EHLO client.example", "a plain name"},
	{"HELO client.example   ", "trailing white space is allowed"},
	{"HELO\tclient.example\t", "tabs separate like spaces"},
	{"HELO client.example trailing", "a second word is not"},
	{"HELO client .example", "nor a space inside the name"},
	{"HELO bad<name>", "'<' is not a name character"},
	{"HELO a(b)", "nor '(' and ')'"},
	{"HELO user@client.example", "nor '@'"},
	{"HELO héllo.example", "nor 8-bit bytes"},
	{"HELO under_score#hash:colon-dash", "'_', '#', ':' and '-' are"},
	{"HELO [127.0.0.1]", "an address literal"},
	{"HELO [IPv6:::1]", "an IPv6 literal"},
	{"HELO [IPv6:2001:db8::25]", "another IPv6 literal"},
	{"HELO [127.0.0.1", "brackets need not balance"},
	{"HELO 192.0.2.25", "a bare address"},
	{"HELO client.example.", "a trailing dot"},
	{"HELO ...", "dots alone"},
	{"HELO " + strings.Repeat("h", 256), "256 bytes is the longest name"},
	{"HELO " + strings.Repeat("h", 257), "257 bytes is too long"},
	{"HELO " + strings.Repeat("h", 250) + strings.Repeat(" ", 7), "the length counts trailing white space"},
}

func TestHeloArgument(t *testing.T) {
	h := start(t, nil)
	var script, got strings.Builder
	for _, c := range heloCases {
		script.WriteString("> " + c.line + "\n")
	}
	replies := h.run(t, "", script.String()+"> QUIT\n")
	// one line per case: the last line of each reply (EHLO's is "250 HELP")
	var last []string
	for _, l := range replies[1:] {
		if len(l) > 3 && l[3] == ' ' {
			last = append(last, l)
		}
	}
	if len(last) != len(heloCases)+1 {
		t.Fatalf("%d replies for %d commands:\n%s", len(last), len(heloCases)+1, strings.Join(replies, "\n"))
	}
	for i, c := range heloCases {
		line := c.line
		if len(line) > 60 {
			line = line[:20] + "...[" + strconv.Itoa(len(line)) + " chars]"
		}
		got.WriteString("C: " + strings.ReplaceAll(line, "\t", `\t`) + "   # " + c.why + "\nS: " + last[i] + "\n")
	}
	golden := filepath.Join("testdata", "helo-replies.txt")
	if *update {
		_ = os.WriteFile(golden, []byte(got.String()), 0o644)
	}
	if want := readFile(golden); got.String() != want {
		t.Errorf("replies:\n%s\nwant (%s):\n%s", got.String(), golden, want)
	}
}

// TestHeloNameInReceived: the name sendmail keeps is the argument
// without its trailing white space.
func TestHeloNameInReceived(t *testing.T) {
	h := start(t, nil)
	h.run(t, "", "> HELO [IPv6:::1] \t \n> MAIL FROM:<a@b.example>\n> RCPT TO:<alice>\n> DATA\n>> x\n> .\n")
	msgs := h.be.Stored()
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0].Env.Received, "from [IPv6:::1] (localhost [127.0.0.1])\n") {
		t.Fatalf("stored %+v", msgs)
	}
}
