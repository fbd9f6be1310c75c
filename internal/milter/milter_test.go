package milter

import (
	"bytes"
	"flag"
	"io"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/milter/miltertest"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestParseFilter(t *testing.T) {
	tests := []struct {
		line    string
		want    Filter
		wantErr string
	}{
		{line: "opendkim, S=inet:8891@127.0.0.1", want: Filter{Name: "opendkim", Socket: "inet:8891@127.0.0.1", Network: "tcp4", Address: "127.0.0.1:8891", Timeouts: DefaultTimeouts}},
		{line: "v6, S=inet6:99@::1, F=R", want: Filter{Name: "v6", Socket: "inet6:99@::1", Network: "tcp6", Address: "[::1]:99", OnError: Reject, Timeouts: DefaultTimeouts}},
		{line: "sock, S=local:/run/f.sock, F=T, T=C:1m;S:2s;R:3;E:4m", want: Filter{Name: "sock", Socket: "local:/run/f.sock", Network: "unix", Address: "/run/f.sock", OnError: TempFail,
			Timeouts: Timeouts{Connect: time.Minute, Send: 2 * time.Second, Read: 3 * time.Second, EOM: 4 * time.Minute}}},
		{line: "u, S=unix:/x", want: Filter{Name: "u", Socket: "unix:/x", Network: "unix", Address: "/x", Timeouts: DefaultTimeouts}},
		{line: "nohost, S=inet:25", want: Filter{Name: "nohost", Socket: "inet:25", Network: "tcp4", Address: "localhost:25", Timeouts: DefaultTimeouts}},
		{line: "drop, S=inet:8891@127.0.0.1, F=4", want: Filter{Name: "drop", Socket: "inet:8891@127.0.0.1", Network: "tcp4", Address: "127.0.0.1:8891", OnError: TempDrop, Timeouts: DefaultTimeouts}},
		{line: "x", wantErr: "missing socket"},
		{line: "x, S=inet:abc@h", wantErr: "invalid port"},
		{line: "x, S=tcp:1@h", wantErr: "unknown socket type"},
		{line: "x, S=unix:rel", wantErr: "absolute path"},
		{line: "x, S=inet:1@h, F=Q", wantErr: "unknown flag"},
		{line: "x, S=inet:1@h, T=Z:1s", wantErr: "unknown timeout"},
		{line: "x, S=inet:1@h, Q=1", wantErr: "unknown filter equate"},
	}
	for _, tt := range tests {
		got, err := ParseFilter(tt.line)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseFilter(%q) error = %v, want %q", tt.line, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseFilter(%q) = %+v, %v\nwant %+v", tt.line, got, err, tt.want)
		}
	}
}

func TestConfigure(t *testing.T) {
	x := []string{"a, S=inet:1@127.0.0.1", "b, S=inet:2@127.0.0.1, F=T"}
	c, err := Configure(Options{XLines: x, InputMailFilters: "b, a", DefaultLogLevel: 9,
		Macros: map[string]string{"envrcpt": "{rcpt_addr}, i", "eoh": "j"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Filters) != 2 || c.Filters[0].Name != "b" || c.Filters[1].Name != "a" {
		t.Errorf("filters = %+v, want b then a", c.Filters)
	}
	if c.LogLevel != 9 {
		t.Errorf("LogLevel = %d, want the LogLevel option's 9", c.LogLevel)
	}
	if !reflect.DeepEqual(c.Macros[StageEnvRcpt], []string{"{rcpt_addr}", "i"}) || !reflect.DeepEqual(c.Macros[StageEOH], []string{"j"}) ||
		!reflect.DeepEqual(c.Macros[StageConnect], DefaultMacros[StageConnect]) {
		t.Errorf("macros = %q", c.Macros)
	}
	if c, err := Configure(Options{XLines: x}); c != nil || err != nil {
		t.Errorf("no InputMailFilters: %v, %v; want no filters (sendmail uses only the listed ones)", c, err)
	}
	if _, err := Configure(Options{XLines: x, InputMailFilters: "a,zz"}); err == nil || !strings.Contains(err.Error(), "zz not defined") {
		t.Errorf("undefined filter: %v", err)
	}
	if c, _ := Configure(Options{XLines: x, InputMailFilters: "a", LogLevel: "14", DefaultLogLevel: 9}); c.LogLevel != 14 {
		t.Errorf("Milter.LogLevel = %d, want 14", c.LogLevel)
	}
}

func TestApply(t *testing.T) {
	base := func() *Message {
		return &Message{Sender: "<s@x>", Rcpts: []Recipient{{Addr: "<a@x>"}, {Addr: "<b@x>", Args: "NOTIFY=NEVER"}},
			Headers: []Header{{Name: "Received", Value: " from us", Own: true}, {Name: "Received", Value: " from them"},
				{Name: "Subject", Value: " hi"}, {Name: "X-A", Value: " 1"}, {Name: "x-a", Value: " 2"}}}
	}
	hdrs := func(m *Message) string {
		var b strings.Builder
		for _, h := range m.Headers {
			b.WriteString(h.Name + ":" + h.Value + "|")
		}
		return b.String()
	}
	tests := []struct {
		name string
		mods []Mod
		hdr  string
		env  string
	}{
		{"add header", []Mod{{Kind: AddHeader, Name: "X-New", Value: " v"}},
			"Received: from us|Received: from them|Subject: hi|X-A: 1|x-a: 2|X-New: v|", ""},
		{"insert first", []Mod{{Kind: InsertHeader, Index: 0, Name: "DKIM-Signature", Value: " s"}},
			"DKIM-Signature: s|Received: from us|Received: from them|Subject: hi|X-A: 1|x-a: 2|", ""},
		{"insert after 2, beyond end", []Mod{{Kind: InsertHeader, Index: 2, Name: "I", Value: " 2"}, {Kind: InsertHeader, Index: 99, Name: "E", Value: " e"}},
			"Received: from us|Received: from them|I: 2|Subject: hi|X-A: 1|x-a: 2|E: e|", ""},
		{"change second X-A (case-insensitive)", []Mod{{Kind: ChangeHeader, Index: 2, Name: "X-A", Value: " two"}},
			"Received: from us|Received: from them|Subject: hi|X-A: 1|x-a: two|", ""},
		{"change Received 1 is the message's own, not ours", []Mod{{Kind: ChangeHeader, Index: 1, Name: "Received", Value: " new"}},
			"Received: from us|Received: new|Subject: hi|X-A: 1|x-a: 2|", ""},
		{"delete, index 0 is the first", []Mod{{Kind: ChangeHeader, Index: 0, Name: "subject", Value: ""}},
			"Received: from us|Received: from them|X-A: 1|x-a: 2|", ""},
		{"change of a missing field adds, delete is a no-op", []Mod{{Kind: ChangeHeader, Index: 3, Name: "X-A", Value: ""}, {Kind: ChangeHeader, Index: 1, Name: "X-Z", Value: " z"}},
			"Received: from us|Received: from them|Subject: hi|X-A: 1|x-a: 2|X-Z: z|", ""},
		{"recipients and sender", []Mod{{Kind: AddRcpt, Addr: "c@x", Args: "NOTIFY=SUCCESS"}, {Kind: AddRcpt, Addr: "<A@X>"}, {Kind: DelRcpt, Addr: "<b@X>"}, {Kind: ChangeFrom, Addr: "<new@x>", Args: "SIZE=1"}},
			"", "<new@x> SIZE=1 -> <a@x>, <c@x> NOTIFY=SUCCESS, "},
	}
	for _, tt := range tests {
		m := base()
		Apply(m, tt.mods)
		if tt.hdr != "" && hdrs(m) != tt.hdr {
			t.Errorf("%s: headers\n got %s\nwant %s", tt.name, hdrs(m), tt.hdr)
		}
		if tt.env != "" {
			env := m.Sender + " " + m.SenderArgs + " -> "
			for _, r := range m.Rcpts {
				env += strings.TrimSpace(r.Addr+" "+r.Args) + ", "
			}
			if env != tt.env {
				t.Errorf("%s: envelope %q, want %q", tt.name, env, tt.env)
			}
		}
	}
}

func TestQueueValue(t *testing.T) {
	for _, tt := range []struct {
		in   string
		lead bool
		want string
	}{
		{"v=1; a=rsa-sha256;\r\n\tb=abc", false, " v=1; a=rsa-sha256;\n\tb=abc"},
		{" already", true, " already"},
		{"a\nb\r\n", false, " a\n\tb"},
	} {
		if got := queueValue(tt.in, tt.lead); got != tt.want {
			t.Errorf("queueValue(%q, %v) = %q, want %q", tt.in, tt.lead, got, tt.want)
		}
	}
}

// harness runs a Session against fake filters.
type harness struct {
	t       testing.TB
	servers []*miltertest.Server
	chain   *Chain
	log     *bytes.Buffer
}

func newHarness(t testing.TB, flags []string, scripts ...miltertest.Script) *harness {
	t.Helper()
	h := &harness{t: t, log: &bytes.Buffer{}}
	var x []string
	var names []string
	for i, sc := range scripts {
		srv, err := miltertest.Start(sc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		h.servers = append(h.servers, srv)
		name := string(rune('a' + i))
		line := name + ", S=" + srv.Socket() + ", T=C:2s;S:2s;R:2s;E:3s"
		if i < len(flags) && flags[i] != "" {
			line += ", F=" + flags[i]
		}
		x = append(x, line)
		names = append(names, name)
	}
	cfg, err := Configure(Options{XLines: x, InputMailFilters: strings.Join(names, ","), DefaultLogLevel: 9, LogLevel: "20"})
	if err != nil {
		t.Fatal(err)
	}
	h.chain = NewChain(cfg, maillog.New(h.log, "sm-mta"))
	return h
}

var testMacros = map[string]string{"j": "mx.example.org", "_": "client.example [192.0.2.1]", "{daemon_name}": "MTA"}

// open runs connect and helo.
func (h *harness) open() (*Session, Verdict) {
	s, v := h.chain.Open("q1", testMacros)
	if v.Action != ActContinue {
		return s, v
	}
	if v = s.Connect(Conn{Host: "client.example", Addr: netip.MustParseAddr("192.0.2.1"), Port: 4567}); v.Action != ActContinue {
		return s, v
	}
	return s, s.Helo("client.example")
}

func testMessage() *Message {
	return &Message{Sender: "<s@client.example>", Rcpts: []Recipient{{Addr: "<a@example.org>"}},
		Headers: []Header{{Name: "Received", Value: " from client.example\n\tby mx.example.org; date", Own: true}, {Name: "Subject", Value: " hello"}}}
}

func body(s string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
}

// transaction runs one message through the session up to end of message.
func transaction(s *Session, m *Message, b string) Result {
	s.SetMacros(map[string]string{"i": "q1", "{mail_addr}": "s@client.example"})
	if v := s.Mail(strings.Trim(m.Sender, "<>"), []string{"SIZE=10", "BODY=8BITMIME"}); v.Action != ActContinue {
		return Result{Verdict: v}
	}
	for _, r := range m.Rcpts {
		if v := s.Rcpt(strings.Trim(r.Addr, "<>"), nil); v.Action != ActContinue {
			return Result{Verdict: v}
		}
	}
	if v := s.Data(); v.Action != ActContinue {
		return Result{Verdict: v}
	}
	return s.EndOfMessage(m, body(b))
}

// TestGoldenPackets holds the packets a whole session sends, byte for byte.
func TestGoldenPackets(t *testing.T) {
	h := newHarness(t, nil, miltertest.Script{EOM: []miltertest.Packet{miltertest.AddHeader("X-Filtered", "yes"), miltertest.Accept()}})
	s, v := h.open()
	if v.Action != ActContinue {
		t.Fatalf("open: %+v", v)
	}
	m := testMessage()
	res := transaction(s, m, "line 1\nline 2\n")
	if res.Action != ActContinue {
		t.Fatalf("eom: %+v", res)
	}
	s.Close()
	h.servers[0].Close()
	got := miltertest.Transcript(h.servers[0].Packets()[0])
	golden := "testdata/session.golden"
	if *update {
		os.WriteFile(golden, []byte(got), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("packets differ from %s:\n%s", golden, got)
	}
	if want := "X-Filtered: yes"; m.Headers[2].Name+":"+m.Headers[2].Value != want {
		t.Errorf("header after eom = %+v, want %s", m.Headers, want)
	}
}
