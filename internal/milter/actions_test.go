package milter

import (
	"slices"
	"strings"
	"testing"
	"time"

	mt "github.com/posthorn/posthorn/internal/milter/miltertest"
)

// TestStageActions: each answer at each stage becomes the verdict
// sendmail gives, and stops the chain there.
func TestStageActions(t *testing.T) {
	tests := []struct {
		name    string
		cmd     byte
		reply   mt.Packet
		action  Action
		reply2  string // the SMTP reply, for reject and tempfail
		logLine string
	}{
		{"helo reject", mt.CmdHelo, mt.Reject(), ActReject, "550 5.7.1 Command rejected", "Milter: helo=client.example, reject=550 5.7.1 Command rejected"},
		{"mail tempfail", mt.CmdMail, mt.TempFail(), ActTempFail, "451 4.3.2 Please try again later", "Milter: from=<s@client.example>, reject=451 4.3.2 Please try again later"},
		{"rcpt replycode", mt.CmdRcpt, mt.ReplyCode("550 5.1.1 no such user here"), ActReject, "550 5.1.1 no such user here", "Milter: to=<a@example.org>, reject=550 5.1.1 no such user here"},
		{"rcpt 4xx replycode", mt.CmdRcpt, mt.ReplyCode("452 4.2.2 over quota"), ActTempFail, "452 4.2.2 over quota", ""},
		{"rcpt discard", mt.CmdRcpt, mt.Discard(), ActDiscard, "", "Milter: to=<a@example.org>, discard"},
		{"data reject", mt.CmdData, mt.Reject(), ActReject, "550 5.7.1 Command rejected", ""},
		{"header reject", mt.CmdHeader, mt.Reject(), ActReject, "550 5.7.1 Command rejected", "Milter: data, reject=550 5.7.1 Command rejected"},
		{"eoh tempfail", mt.CmdEOH, mt.TempFail(), ActTempFail, "451 4.3.2 Please try again later", "Milter: data, reject=451 4.3.2 Please try again later"},
		{"body discard", mt.CmdBody, mt.Discard(), ActDiscard, "", "Milter: data, discard"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			second := mt.Script{}
			h := newHarness(t, nil, mt.Script{Reply: map[byte]mt.Packet{tt.cmd: tt.reply}}, second)
			s, v := h.open()
			res := Result{Verdict: v}
			if v.Action == ActContinue {
				res = transaction(s, testMessage(), "body\n")
			}
			s.Close()
			if res.Action != tt.action {
				t.Fatalf("verdict %+v, want action %d", res.Verdict, tt.action)
			}
			if tt.reply2 != "" && (res.Reply == nil || res.Reply.Error() != tt.reply2) {
				t.Errorf("reply %v, want %s", res.Reply, tt.reply2)
			}
			if res.Filter != "a" {
				t.Errorf("decided by %q, want a", res.Filter)
			}
			if tt.logLine != "" && !strings.Contains(h.log.String(), tt.logLine) {
				t.Errorf("log lacks %q:\n%s", tt.logLine, h.log)
			}
			h.servers[1].Close()
			for _, p := range h.servers[1].Packets()[0] {
				if p.Cmd == tt.cmd {
					t.Errorf("the second filter got %c after the first decided", tt.cmd)
				}
			}
		})
	}
}

// TestEOMModifications: every modification packet reaches the message,
// and a second filter sees what the first changed.
func TestEOMModifications(t *testing.T) {
	first := mt.Script{EOM: []mt.Packet{
		mt.AddHeader("X-Spam-Flag", "NO"),
		mt.InsertHeader(0, "DKIM-Signature", "v=1; d=example.org;\r\n\tb=abc"),
		mt.ChangeHeader(1, "Subject", "[tagged] hello"),
		mt.AddRcptArgs("<c@example.org>", "NOTIFY=NEVER"),
		mt.AddRcpt("<d@example.org>"),
		mt.DelRcpt("<a@example.org>"),
		mt.ChangeFrom("<bounces@example.org>", "SIZE=20"),
		mt.Progress(),
		mt.ReplaceBody("new body\r\n"),
		mt.Quarantine("looks odd"),
		mt.Continue(),
	}}
	second := mt.Script{EOM: []mt.Packet{mt.ChangeHeader(1, "X-Spam-Flag", ""), mt.Accept()}}
	h := newHarness(t, nil, first, second)
	s, _ := h.open()
	m := testMessage()
	res := transaction(s, m, "old body\n")
	s.Close()
	if res.Action != ActContinue {
		t.Fatalf("verdict %+v", res.Verdict)
	}
	var names []string
	for _, hd := range m.Headers {
		names = append(names, hd.Name+":"+hd.Value)
	}
	want := []string{"DKIM-Signature: v=1; d=example.org;\n\tb=abc", "Received: from client.example\n\tby mx.example.org; date", "Subject: [tagged] hello"}
	if strings.Join(names, "|") != strings.Join(want, "|") {
		t.Errorf("headers\n got %q\nwant %q", names, want)
	}
	if m.Sender != "<bounces@example.org>" || m.SenderArgs != "SIZE=20" {
		t.Errorf("sender %s %s", m.Sender, m.SenderArgs)
	}
	if len(m.Rcpts) != 2 || m.Rcpts[0] != (Recipient{"<c@example.org>", "NOTIFY=NEVER"}) || m.Rcpts[1].Addr != "<d@example.org>" {
		t.Errorf("recipients %+v", m.Rcpts)
	}
	if string(res.Body) != "new body\n" || res.Quarantine != "looks odd" {
		t.Errorf("body %q quarantine %q", res.Body, res.Quarantine)
	}
	h.servers[1].Close()
	var got2 []string
	for _, p := range h.servers[1].Packets()[0] {
		if p.Cmd == mt.CmdHeader || p.Cmd == mt.CmdBody {
			got2 = append(got2, mt.Transcript([]mt.Packet{p}))
		}
	}
	if !strings.Contains(strings.Join(got2, ""), "B new body\\x0d\\x0a") || !strings.Contains(strings.Join(got2, ""), "L X-Spam-Flag\\0NO\\0") {
		t.Errorf("second filter did not see the first one's changes:\n%s", strings.Join(got2, ""))
	}
	for _, l := range []string{"Milter insert (0): header: DKIM-Signature: v=1; d=example.org; b=abc", "Milter add: header: X-Spam-Flag: NO",
		"Milter change: header Subject: from hello to [tagged] hello", "Milter add: rcpt: <c@example.org>", "Milter delete: rcpt <a@example.org>",
		"Milter chgfrom: <bounces@example.org>", "Milter message: body replaced", "Milter delete: header X-Spam-Flag: NO", "Milter accept: message"} {
		if !strings.Contains(h.log.String(), l) {
			t.Errorf("log lacks %q", l)
		}
	}
}

// TestOneConnectionPerSession: two messages, one connection per filter.
func TestOneConnectionPerSession(t *testing.T) {
	h := newHarness(t, nil, mt.Script{}, mt.Script{})
	s, _ := h.open()
	for i := 0; i < 3; i++ {
		if res := transaction(s, testMessage(), "b\n"); res.Action != ActContinue {
			t.Fatalf("message %d: %+v", i, res.Verdict)
		}
	}
	// an aborted transaction (RSET) and another message
	s.Mail("x@y", nil)
	s.Abort()
	if res := transaction(s, testMessage(), "b\n"); res.Action != ActContinue {
		t.Fatalf("after abort: %+v", res.Verdict)
	}
	s.Close()
	for i, srv := range h.servers {
		if n := srv.Conns(); n != 1 {
			t.Errorf("filter %d: %d connections, want 1", i, n)
		}
	}
}

// TestBrokenFilters: a filter that is down, slow or answers garbage goes
// to error state; F= decides what the client hears, and the session and
// the other filter go on.
func TestBrokenFilters(t *testing.T) {
	down := func(h *harness) { h.servers[0].Close() }
	tests := []struct {
		name   string
		script mt.Script
		before func(*harness)
	}{
		{"down", mt.Script{}, down},
		{"slow at rcpt", mt.Script{Delay: map[byte]time.Duration{mt.CmdRcpt: 3 * time.Second}}, nil},
		{"garbage at mail", mt.Script{Garbage: mt.CmdMail}, nil},
		{"garbage at eom", mt.Script{Garbage: mt.CmdEOM}, nil},
		{"hangup at header", mt.Script{Hangup: mt.CmdHeader}, nil},
		{"bad modification", mt.Script{EOM: []mt.Packet{mt.Raw('m', "\x00"), mt.Continue()}}, nil},
	}
	for _, tt := range tests {
		for _, flag := range []struct {
			f    string
			want Action
		}{{"", ActContinue}, {"T", ActTempFail}, {"R", ActReject}, {"4", ActTempFail}} {
			t.Run(tt.name+"/F="+flag.f, func(t *testing.T) {
				if testing.Short() && strings.HasPrefix(tt.name, "slow") {
					t.Skip("slow")
				}
				h := newHarness(t, []string{flag.f}, tt.script, mt.Script{EOM: []mt.Packet{mt.AddHeader("X-Second", "ok"), mt.Continue()}})
				if tt.before != nil {
					tt.before(h)
				}
				s, v := h.open()
				res := Result{Verdict: v}
				m := testMessage()
				if v.Action == ActContinue {
					res = transaction(s, m, "b\n")
				}
				if res.Action != flag.want {
					t.Fatalf("verdict %+v, want %d", res.Verdict, flag.want)
				}
				wantReply := map[string]string{"T": "451 4.3.2 Please try again later", "R": "550 5.7.1 Command rejected", "4": "421 4.3.0 closing connection"}[flag.f]
				if got := ""; res.Reply != nil || wantReply != "" {
					if res.Reply != nil {
						got = res.Reply.Error()
					}
					if got != wantReply {
						t.Errorf("reply %q, want %q", got, wantReply)
					}
				}
				if !strings.Contains(h.log.String(), "Milter (a): to error state") {
					t.Errorf("log lacks the error state line:\n%s", h.log)
				}
				if flag.want == ActContinue && m.Headers[len(m.Headers)-1].Name != "X-Second" {
					t.Errorf("the second filter did not run: %+v", m.Headers)
				}
				// the broken filter stays out of later transactions
				if res2 := transaction(s, testMessage(), "b\n"); res2.Action != flag.want {
					t.Errorf("second message: %+v, want %d", res2.Verdict, flag.want)
				}
				s.Close()
			})
		}
	}
}

// TestEOMTimeout: T=E bounds the whole end of message although each
// progress packet comes within T=R; without the bound the filter would
// answer after 5 s.
func TestEOMTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	slow := mt.Script{Progress: 5, Every: time.Second}
	h := newHarness(t, []string{"T"}, slow) // R:2s, E:3s
	s, _ := h.open()
	res := transaction(s, testMessage(), "b\n")
	s.Close()
	if res.Action != ActTempFail || !strings.Contains(h.log.String(), "to error state") {
		t.Fatalf("verdict %+v, want tempfail from the E timeout\n%s", res.Verdict, h.log)
	}
	// and a filter whose progress fits in E is waited for
	h = newHarness(t, []string{"T"}, mt.Script{Progress: 2, Every: time.Second, EOM: []mt.Packet{mt.Accept()}})
	s, _ = h.open()
	res = transaction(s, testMessage(), "b\n")
	s.Close()
	if res.Action != ActContinue {
		t.Fatalf("verdict %+v, want continue", res.Verdict)
	}
}

// A filter's multi-line reply keeps its lines (smfi_setmlreply); the
// first line's codes are the reply's.
func TestParseReplyLines(t *testing.T) {
	for _, tc := range []struct {
		text       string
		code       int
		enh, first string
		more       []string
	}{
		{"550 5.7.1 Command rejected", 550, "5.7.1", "Command rejected", nil},
		{"550-5.7.1 one\r\n550-5.7.1 two\r\n550 5.7.1 three", 550, "5.7.1", "one", []string{"two", "three"}},
		{"451-4.7.1 greylisted\r\n451 4.7.1 come back later\r\n", 451, "4.7.1", "greylisted", []string{"come back later"}},
		{"no code at all", 550, "5.0.0", "no code at all", nil},
	} {
		e := parseReply(tc.text, 550)
		if e.Code != tc.code || e.Enhanced != tc.enh || e.Text != tc.first || !slices.Equal(e.More, tc.more) {
			t.Errorf("%q: %d %s %q %q, want %d %s %q %q", tc.text, e.Code, e.Enhanced, e.Text, e.More, tc.code, tc.enh, tc.first, tc.more)
		}
	}
}
