package smtpd_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/status"
)

// fakeMilters answers each stage from a table and records the calls.
type fakeMilters struct {
	mu      sync.Mutex
	calls   []string
	open    error
	answers map[string]error // "helo", "mail", "rcpt:<addr>", "data", "unknown"
}

func (f *fakeMilters) note(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeMilters) Calls() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, " ")
}

func (f *fakeMilters) Open(c *smtpd.Client, id string) (smtpd.MilterSession, error) {
	f.note("open")
	return &fakeMilterSession{f}, f.open
}

type fakeMilterSession struct{ f *fakeMilters }

func (s *fakeMilterSession) Helo(c *smtpd.Client) error {
	s.f.note("helo=" + c.Helo)
	return s.f.answers["helo"]
}
func (s *fakeMilterSession) Mail(env *smtpd.Envelope, args []string) error {
	s.f.note("mail=" + env.From.Addr + "[" + strings.Join(args, ",") + "]")
	if env.Milter != smtpd.MilterSession(s) {
		s.f.note("NO-ENVELOPE-SESSION")
	}
	return s.f.answers["mail"]
}
func (s *fakeMilterSession) Rcpt(env *smtpd.Envelope, r *smtpd.Recipient, args []string) error {
	s.f.note("rcpt=" + r.Addr + "[" + strings.Join(args, ",") + "]")
	return s.f.answers["rcpt:"+r.Addr]
}
func (s *fakeMilterSession) Data(env *smtpd.Envelope) error {
	s.f.note("data")
	return s.f.answers["data"]
}
func (s *fakeMilterSession) Unknown(c *smtpd.Client, line string) error {
	s.f.note("unknown=" + line)
	return s.f.answers["unknown"]
}
func (s *fakeMilterSession) Abort() { s.f.note("abort") }
func (s *fakeMilterSession) Close() { s.f.note("close") }

func TestMilterHooks(t *testing.T) {
	tests := []struct {
		name    string
		open    error
		answers map[string]error
		script  string
		want    []string // reply lines that must appear
		absent  []string // reply lines that must not
		calls   string   // the calls, in order (a prefix is enough)
		stored  int
	}{
		{
			name:    "a filter refuses one recipient",
			answers: map[string]error{"rcpt:bob@localhost": status.New(550, "5.7.1", "Command rejected")},
			script:  "> EHLO client.example\n> MAIL FROM:<s@client.example> SIZE=10\n> RCPT TO:<alice@localhost> NOTIFY=NEVER\n> RCPT TO:<bob@localhost>\n> DATA\n>> Subject: x\n>>\n>> body\n> .\n> QUIT",
			want:    []string{"550 5.7.1 Command rejected", "250 2.1.5 <alice@localhost>... Recipient ok"},
			calls:   "open helo=client.example mail=s@client.example[SIZE=10] rcpt=alice@localhost[NOTIFY=NEVER] rcpt=bob@localhost[] data",
			stored:  1,
		},
		{
			name:    "helo tempfail",
			answers: map[string]error{"helo": status.New(451, "4.3.2", "Please try again later")},
			script:  "> EHLO client.example\n> QUIT",
			want:    []string{"451 4.3.2 Please try again later"},
			calls:   "open helo=client.example",
		},
		{
			name:    "discard at MAIL: 250 and nothing stored",
			answers: map[string]error{"mail": smtpd.ErrDiscard},
			script:  "> EHLO client.example\n> MAIL FROM:<s@client.example>\n> RCPT TO:<alice@localhost>\n> DATA\n>> Subject: x\n>>\n>> body\n> .\n> QUIT",
			want:    []string{"250 2.1.0 <s@client.example>... Sender ok"},
			calls:   "open helo=client.example mail=s@client.example[] rcpt=alice@localhost[] data",
			stored:  0,
		},
		{
			name:    "DATA rejected before the 354, RSET aborts",
			answers: map[string]error{"data": status.New(554, "5.7.1", "no thanks")},
			script:  "> EHLO client.example\n> MAIL FROM:<s@client.example>\n> RCPT TO:<alice@localhost>\n> DATA\n> RSET\n> QUIT",
			want:    []string{"554 5.7.1 no thanks"},
			calls:   "open helo=client.example mail=s@client.example[] rcpt=alice@localhost[] data abort",
		},
		{
			name:   "connect rejected: commands refused",
			open:   status.New(550, "5.7.1", "Command rejected"),
			script: "> EHLO client.example\n> MAIL FROM:<s@client.example>\n> QUIT",
			want:   []string{"554 refhost.example.org ESMTP not accepting messages", "550 5.7.1 Command rejected"},
			calls:  "open",
		},
		{
			name:    "a filter's 421 at MAIL ends the session",
			answers: map[string]error{"mail": status.New(421, "4.7.0", "not now")},
			script:  "> EHLO client.example\n> MAIL FROM:<s@client.example>\n> RCPT TO:<alice@localhost>\n> QUIT",
			want:    []string{"421 4.7.0 not now"},
			absent:  []string{"221 2.0.0 refhost.example.org closing connection"},
			calls:   "open helo=client.example mail=s@client.example[]",
		},
		{
			name:   "F=4 at connect: 421 greeting, session over",
			open:   status.New(421, "4.3.0", "closing connection"),
			script: "> EHLO client.example\n> QUIT",
			want:   []string{"421 4.7.0 refhost.example.org closing connection"},
			absent: []string{"250-refhost.example.org Hello", "221 2.0.0 refhost.example.org closing connection"},
			calls:  "open",
		},
		{
			name:    "unknown command goes to the filters",
			answers: map[string]error{"unknown": status.New(550, "5.7.1", "go away")},
			script:  "> EHLO client.example\n> FOO bar\n> QUIT",
			want:    []string{"550 5.7.1 go away"},
			calls:   "open helo=client.example unknown=FOO bar",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeMilters{open: tt.open, answers: tt.answers}
			h := start(t, func(c *smtpd.Config) { c.Milters = f })
			lines := h.run(t, "", tt.script)
			for _, w := range tt.want {
				if !contains(lines, w) {
					t.Errorf("no %q in:\n%s", w, strings.Join(lines, "\n"))
				}
			}
			for _, w := range tt.absent {
				for _, l := range lines {
					if strings.HasPrefix(l, w) {
						t.Errorf("%q in:\n%s", w, strings.Join(lines, "\n"))
					}
				}
			}
			if strings.HasPrefix(tt.want[0], "421") && strings.Contains(f.Calls(), "rcpt=") {
				t.Errorf("the session went on after the 421: %s", f.Calls())
			}
			if got := f.Calls(); !strings.HasPrefix(got, tt.calls) || strings.Contains(got, "NO-ENVELOPE-SESSION") {
				t.Errorf("calls %q, want prefix %q", got, tt.calls)
			}
			if n := len(h.be.Stored()); n != tt.stored {
				t.Errorf("%d messages stored, want %d", n, tt.stored)
			}
		})
	}
}
