package smtpd_test

import (
	"bufio"
	"context"
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/policy"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/smtpd/smtpdtest"
	"github.com/posthorn/posthorn/internal/status"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// referenceAccess is the reference host's access file (Debian's default
// plus the two loopback clients that may connect but not relay).
const referenceAccess = `Connect:127 RELAY
Connect:127.0.0.66 OK
Connect:127.0.0.67 OK
`

// sleeps records tarpit waits instead of waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(_ context.Context, d time.Duration) {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// referenceConfig is the server configured like the reference daemon.
func referenceConfig(t testing.TB, be smtpd.Backend, sl *sleeps) smtpd.Config {
	acc, err := policy.ParseAccess(strings.NewReader(referenceAccess), "access")
	if err != nil {
		t.Fatal(err)
	}
	if sl == nil {
		sl = &sleeps{}
	}
	return smtpd.Config{
		Hostname:        "refhost.example.org",
		Greeting:        "refhost.example.org ESMTP posthorn 0.1; $b",
		Version:         "posthorn 0.1",
		DaemonName:      "MTA-v4",
		MaxHopCount:     100,
		Privacy:         smtpd.ParsePrivacy("needmailhelo,needexpnhelo,needvrfyhelo,restrictqrun,restrictexpand,nobodyreturn,authwarnings"),
		BadRcptThrottle: 3,
		Policy: &policy.Policy{
			Router: smtpdtest.Reference().Router(), // the reference host's $=w
			Access: acc,
		},
		Backend:  be,
		Resolver: smtpdtest.ReferenceResolver(),
		Sleep:    sl.sleep,
	}
}

// serveTCP starts srv on a loopback listener; stdio runs each connection
// through ServeStdio instead (for the -bs captures).
func serveTCP(t testing.TB, srv *smtpd.Server, stdio bool) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if stdio {
					_ = srv.ServeStdio(ctx, c, c, "root")
					c.Close()
					return
				}
				_ = srv.ServeConn(ctx, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func dialFrom(t testing.TB, src, addr string) net.Conn {
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0))
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	reGreeting = regexp.MustCompile(`^(S: 2\d\d[ -]refhost\.example\.org) ESMTP .*$`)
	reQID      = regexp.MustCompile(`\b([0-9A-Za-z]{8}[0-9]{6}|ID[0-9]{6})\b`)
	reVersion  = regexp.MustCompile(`This is (sendmail version|posthorn) \S+$`)
	reBugURL   = regexp.MustCompile(`^(S: 214-2\.0\.0 \t)(http://www\.sendmail\.org/email-addresses\.html|https://github\.com/posthorn/posthorn/issues)$`)
)

// normalise removes what differs between runs and implementations by
// nature: capture headers, timing lines, the greeting text after
// "ESMTP", queue IDs, version strings, the bug-report address.
func normalise(s string) string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "# command"), strings.HasPrefix(l, "# (S: ="),
			strings.HasPrefix(l, "# connected from"), strings.HasPrefix(l, "# talking to command"),
			strings.HasPrefix(l, "   [t="):
			continue
		}
		l = reGreeting.ReplaceAllString(l, "$1 ESMTP <greeting>")
		l = reQID.ReplaceAllString(l, "<QID>")
		l = reVersion.ReplaceAllString(l, "This is <version>")
		l = reBugURL.ReplaceAllString(l, "$1<bug-url>")
		out = append(out, l)
	}
	return strings.Join(out, "\n") + "\n"
}

// knownDifferences reads testdata/transcript-differences.txt: "name:
// reason" lines for scripts whose transcript differs from sendmail's on
// purpose or for lack of the real backend. Those are compared with
// testdata/golden/<name>.txt instead.
func knownDifferences(t *testing.T) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(readFile("testdata/transcript-differences.txt"), "\n") {
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
			continue
		}
		name, reason, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("transcript-differences.txt: bad line %q", l)
		}
		m[strings.TrimSpace(name)] = strings.TrimSpace(reason)
	}
	return m
}

// runScript plays one reference script against a fresh server set up
// as the capture's command line says.
func runScript(t *testing.T, name, script, ref string) string {
	header, _, _ := strings.Cut(ref, "\n")
	be := smtpdtest.Reference()
	cfg := referenceConfig(t, be, nil)
	src := ""
	stdio := strings.Contains(header, "--exec")
	if m := regexp.MustCompile(`--src (\S+)`).FindStringSubmatch(header); m != nil {
		src = m[1]
	}
	if strings.Contains(header, "MaxMessageSize=1000") {
		cfg.MaxMessageSize = 1000
	}
	if stdio {
		cfg.GreetPause = time.Second // Debian's greet_pause; -bs input is all there at once
	}
	if name == "01-smtp-rcpt-relay-denied" {
		// The lab DNS had no record for client.example when this was
		// captured (the 127.0.0.67 capture a minute later found one).
		cfg.SenderDomain = func(_ context.Context, sender string) error {
			if strings.HasSuffix(sender, "@client.example") {
				return status.New(553, "5.1.8", "Domain of sender address %s does not exist", sender)
			}
			return nil
		}
	}
	// The delivery transcript of VERB comes from the delivery agents:
	// the fake replays the reference's, to check how it is relayed.
	for _, l := range strings.Split(ref, "\n") {
		if v, ok := strings.CutPrefix(l, "S: 050 "); ok {
			be.Verbose = append(be.Verbose, v)
		}
	}
	srv, err := smtpd.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTCP(t, srv, stdio)
	conn := dialFrom(t, src, addr)
	defer conn.Close()
	return replay(conn, script)
}

func TestReferenceTranscripts(t *testing.T) {
	scripts, _ := filepath.Glob(refScripts + "*.script")
	if len(scripts) == 0 {
		t.Fatal("no reference scripts")
	}
	known := knownDifferences(t)
	for _, path := range scripts {
		name := strings.TrimSuffix(filepath.Base(path), ".script")
		t.Run(name, func(t *testing.T) {
			ref := readFile(refDir + name + ".txt")
			header, _, _ := strings.Cut(ref, "\n")
			if strings.Contains(header, "--src") && !loopbackAliases(t) {
				t.Skip("cannot bind 127.0.0.x source addresses")
			}
			got := normalise(runScript(t, name, readFile(path), ref))
			want := normalise(ref)
			golden := filepath.Join("testdata", "golden", name+".txt")
			reason, isKnown := known[name]
			if !isKnown {
				if got != want {
					t.Errorf("transcript differs from sendmail's:\n%s", diffLines(want, got))
				}
				return
			}
			t.Logf("known difference: %s", reason)
			if got == want {
				t.Errorf("%s now matches sendmail: remove it from transcript-differences.txt", name)
			}
			if *update {
				_ = os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if g := normalise(readFile(golden)); g != got {
				t.Errorf("transcript differs from %s:\n%s", golden, diffLines(g, got))
			}
		})
	}
}

func loopbackAliases(t *testing.T) bool {
	c, err := net.ListenPacket("udp", "127.0.0.66:0")
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// diffLines shows the first differing lines of two texts.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 12; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("  line " + strconv.Itoa(i+1) + "\n    sendmail: " + clip(wl) + "\n    posthorn: " + clip(gl) + "\n")
			shown++
		}
	}
	return b.String()
}

func clip(s string) string {
	if len(s) > 160 {
		return s[:160] + "..."
	}
	return s
}
