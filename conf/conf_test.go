package conf

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

var refIdentity = &Identity{
	Hostname:  "refhost",
	Canonical: "refhost.example.org",
	Addresses: []string{"127.0.0.1", "127.0.1.1", "192.0.2.2"},
}

// fixtureFS maps the absolute paths a cf names onto testdata.
func fixtureFS(files map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if local, ok := files[p]; ok {
			return os.ReadFile(local)
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
}

func load(t *testing.T, cf string, o ...Override) *Config {
	t.Helper()
	c, err := Load(LoadOptions{
		Path:      "/etc/mail/sendmail.cf",
		Overrides: o,
		Identity:  refIdentity,
		ReadFile: fixtureFS(map[string]string{
			"/etc/mail/sendmail.cf":         cf,
			"/etc/mail/local-host-names":    "testdata/local-host-names",
			"/etc/mail/relay-domains-fixed": "testdata/local-host-names",
		}),
	})
	if err != nil {
		t.Fatalf("Load(%s): %v", cf, err)
	}
	return c
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestDebianSendmailCF(t *testing.T) {
	c := load(t, "testdata/debian-sendmail.cf")
	if c.QueueDirectory != "/var/spool/mqueue" {
		t.Errorf("QueueDirectory = %q", c.QueueDirectory)
	}
	if !reflect.DeepEqual(c.AliasFiles, []string{"/etc/mail/aliases"}) {
		t.Errorf("AliasFiles = %q", c.AliasFiles)
	}
	wantDaemons := []DaemonPort{
		{Name: "MTA-v4", Family: "inet", Addr: "127.0.0.1", Port: 2025},
		{Name: "MSP-v4", Family: "inet", Addr: "127.0.0.1", Port: 2587, Modifiers: "Ea"},
	}
	if !reflect.DeepEqual(c.Daemons, wantDaemons) {
		t.Errorf("Daemons = %+v", c.Daemons)
	}
	if c.Daemons[0].Address() != "[127.0.0.1]:2025" || !c.Daemons[1].HasModifier('a') {
		t.Errorf("listener address/modifiers wrong: %s", c.Daemons[0].Address())
	}
	if c.Macros["j"] != "refhost.example.org" || c.Macros["w"] != "refhost" || c.Macros["m"] != "example.org" {
		t.Errorf("identity macros: j=%q w=%q m=%q", c.Macros["j"], c.Macros["w"], c.Macros["m"])
	}
	wantW := []string{"localhost", "refhost.example.org", "mail.example.org", "refhost", "[127.0.0.1]", "[127.0.1.1]", "[192.0.2.2]"}
	if !reflect.DeepEqual(c.Class("w"), wantW) {
		t.Errorf("$=w = %q", c.Class("w"))
	}
	if c.MaxHopCount != 100 || c.MaxDaemonChildren != 0 || c.ConnectionRateThrottle != 15 || c.BadRcptThrottle != 3 {
		t.Errorf("limits: hops %d children %d rate %d badrcpt %d", c.MaxHopCount, c.MaxDaemonChildren, c.ConnectionRateThrottle, c.BadRcptThrottle)
	}
	if c.Timeout("queuewarn") != 4*time.Hour || c.Timeout("queuereturn") != 5*24*time.Hour ||
		c.Timeout("command") != 5*time.Minute || c.Timeout("ident") != 5*time.Second || c.Timeout("rcpt") != time.Hour {
		t.Errorf("timeouts: %v", c.Timeouts)
	}
	if c.DeliveryMode != DeliverBackground || c.QueueFileMode != 0o640 || c.TrustedUser != "smmta" || c.DefaultUser != "mail:mail" {
		t.Errorf("misc: mode %v qfmode %o trusted %q default %q", c.DeliveryMode, c.QueueFileMode, c.TrustedUser, c.DefaultUser)
	}
	if !c.Privacy("needmailhelo") || !c.Privacy("restrictqrun") || c.Privacy("noexpn") {
		t.Errorf("PrivacyOptions = %v", c.PrivacyOptions)
	}
	if !reflect.DeepEqual(c.ForwardPath, []string{"$z/.forward.$w", "$z/.forward"}) {
		t.Errorf("ForwardPath = %q", c.ForwardPath)
	}
	if !reflect.DeepEqual(c.TrustedUsers, []string{"root", "daemon", "uucp"}) {
		t.Errorf("TrustedUsers = %q", c.TrustedUsers)
	}
	if c.Macros["Z"] != "8.17.1.9/Debian-2+deb12u2" || c.Macros["n"] != "MAILER-DAEMON" {
		t.Errorf("macros Z=%q n=%q", c.Macros["Z"], c.Macros["n"])
	}
	var buf bytes.Buffer
	c.WriteIdentity(&buf)
	golden(t, "debian-sendmail.cf.golden", buf.Bytes())
}

func TestDebianSubmitCF(t *testing.T) {
	c := load(t, "testdata/debian-submit.cf")
	if c.QueueDirectory != "/var/spool/mqueue-client" || c.DeliveryMode != DeliverInteractive || c.QueueFileMode != 0o660 {
		t.Errorf("submit.cf: queue %q mode %v qfmode %o", c.QueueDirectory, c.DeliveryMode, c.QueueFileMode)
	}
	if !c.Privacy("noexpn") || !c.Privacy("noetrn") || !c.Privacy("needmailhelo") {
		t.Errorf("goaway not expanded: %v", c.PrivacyOptions)
	}
	if !c.DontProbeInterfaces || reflect.DeepEqual(c.Class("w"), []string{"localhost", "refhost", "refhost.example.org"}) == false {
		t.Errorf("$=w = %q", c.Class("w"))
	}
	if c.Macros["MTAHost"] != "[127.0.0.1]" {
		t.Errorf("${MTAHost} = %q", c.Macros["MTAHost"])
	}
	var buf bytes.Buffer
	c.WriteIdentity(&buf)
	golden(t, "debian-submit.cf.golden", buf.Bytes())
}

func TestEmbeddedDefaults(t *testing.T) {
	c, err := Load(LoadOptions{Identity: refIdentity, ReadFile: fixtureFS(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != "" || c.QueueDirectory != "/var/spool/mqueue" || c.MailSpoolDirectory != "/var/mail" {
		t.Errorf("defaults: path %q queue %q spool %q", c.Path, c.QueueDirectory, c.MailSpoolDirectory)
	}
	if len(c.Daemons) != 1 || c.Daemons[0].Address() != "[0.0.0.0]:25" || c.Daemons[0].Name != "MTA" {
		t.Errorf("default daemon: %+v", c.Daemons)
	}
	want := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	if !reflect.DeepEqual(c.RelayHosts, want) {
		t.Errorf("RelayHosts = %v", c.RelayHosts)
	}
	if c.MaxHopCount != 25 || c.Timeout("queuewarn") != 4*time.Hour || !c.Privacy("authwarnings") || !c.MeToo {
		t.Errorf("defaults wrong: %+v", c)
	}
	if len(c.NotInterpreted) != 0 {
		t.Errorf("embedded defaults report uninterpreted items: %v", c.NotInterpreted)
	}
}

func TestOverrides(t *testing.T) {
	c := load(t, "testdata/debian-sendmail.cf",
		Override{Name: "Q", Short: true, Value: "/tmp/q"},
		Override{Name: "timeout.QUEUEWARN", Value: "1s"},
		Override{Name: "d", Short: true, Value: "q"},
		Override{Name: "i", Short: true},
		Override{Name: "MaxMessageSize", Value: "1000"},
	)
	if c.QueueDirectory != "/tmp/q" || c.Timeout("queuewarn") != time.Second || c.DeliveryMode != DeliverQueueOnly ||
		!c.IgnoreDots || c.MaxMessageSize != 1000 {
		t.Errorf("overrides not applied: queue %q warn %v mode %v dots %v size %d",
			c.QueueDirectory, c.Timeout("queuewarn"), c.DeliveryMode, c.IgnoreDots, c.MaxMessageSize)
	}
}

func TestResolverOptions(t *testing.T) {
	c := load(t, "testdata/debian-sendmail.cf")
	if c.AcceptUnresolvableDomains || c.ResolverRetry != 0 {
		t.Errorf("defaults: accept %v retry %d", c.AcceptUnresolvableDomains, c.ResolverRetry)
	}
	c = load(t, "testdata/debian-sendmail.cf",
		Override{Name: "AcceptUnresolvableDomains", Value: "true"},
		Override{Name: "Timeout.resolver.retrans", Value: "3"},
		Override{Name: "Timeout.resolver.retry", Value: "4"},
		Override{Name: "Timeout.resolver.retry.first", Value: "9"},
	)
	// resolver.retrans counts seconds when no unit is given, as sendmail's
	// convtime(val, 's'); resolver.retry is a count.
	if !c.AcceptUnresolvableDomains || c.Timeout("resolver.retrans") != 3*time.Second || c.ResolverRetry != 4 {
		t.Errorf("accept %v retrans %v retry %d", c.AcceptUnresolvableDomains, c.Timeout("resolver.retrans"), c.ResolverRetry)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		opts LoadOptions
		msg  string
		exit int
	}{
		{"missing -C", LoadOptions{Path: "/nonexistent.cf"}, "/nonexistent.cf: line 0: cannot open: No such file or directory", 72},
		{"unknown option in file", LoadOptions{Path: write("a.cf", "# x\nO QueueDirectory=/q\nO NoSuchOption=1\n")},
			"a.cf: line 3: readcf: unknown option name NoSuchOption", 78},
		{"unknown -O", LoadOptions{Path: write("b.cf", "O LogLevel=9\n"), Overrides: []Override{{Name: "NoSuchOption", Value: "1"}}},
			"readcf: unknown option name NoSuchOption", 70},
		{"bad value", LoadOptions{Path: write("c.cf", "O MaxMessageSize=lots\n")}, "c.cf: line 1: MaxMessageSize: invalid number \"lots\"", 78},
		{"bad control line", LoadOptions{Path: write("d.cf", "Zfoo\n")}, "d.cf: line 1: unknown control line \"Zfoo\"", 78},
		{"bad daemon", LoadOptions{Path: write("e.cf", "O DaemonPortOptions=Port=99999\n")}, "e.cf: line 1: DaemonPortOptions: invalid port \"99999\"", 78},
		{"bad privacy", LoadOptions{Path: write("f.cf", "O PrivacyOptions=noexpn,bogus\n")}, "f.cf: line 1: PrivacyOptions: unknown PrivacyOptions flag \"bogus\"", 78},
	}
	for _, tc := range tests {
		tc.opts.Identity = refIdentity
		_, err := Load(tc.opts)
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%s: want *Error, got %v", tc.name, err)
			continue
		}
		if !strings.HasSuffix(ce.Msg, tc.msg) || ce.Exit != tc.exit {
			t.Errorf("%s: got %q exit %d, want …%q exit %d", tc.name, ce.Msg, ce.Exit, tc.msg, tc.exit)
		}
	}
}

func TestNotInterpretedReportedOnce(t *testing.T) {
	c := load(t, "testdata/debian-sendmail.cf")
	seen := map[string]int{}
	for _, n := range c.NotInterpreted {
		seen[n]++
	}
	for n, k := range seen {
		if k != 1 {
			t.Errorf("%q reported %d times", n, k)
		}
	}
	for _, want := range []string{"option DontBlameSendmail", "option QueueLA", "550 rewriting rules (R)", "7 mailer definitions (M)", "1 version level (V)"} {
		if seen[want] == 0 {
			t.Errorf("%q not reported; got %v", want, c.NotInterpreted)
		}
	}
	if seen["option QueueDirectory"] != 0 {
		t.Error("an honoured option is reported as not interpreted")
	}
}

func TestMacrosAndClasses(t *testing.T) {
	dir := t.TempDir()
	hosts := filepath.Join(dir, "relay-domains")
	os.WriteFile(hosts, []byte("example.net\nexample.com # comment\n"), 0o644)
	cf := filepath.Join(dir, "m.cf")
	os.WriteFile(cf, []byte("Dj$w.posthorn.test\nD{daemon_name}X\nCwmail.test other.test\nFR-o "+hosts+" %[^\\#]\nFw-o /nonexistent\nFw/nonexistent2\n"), 0o644)
	c, err := Load(LoadOptions{Path: cf, Identity: &Identity{Hostname: "box"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Macros["j"] != "box.posthorn.test" || c.Macros["m"] != "posthorn.test" {
		t.Errorf("$j=%q $m=%q", c.Macros["j"], c.Macros["m"])
	}
	if !reflect.DeepEqual(c.Class("R"), []string{"example.net", "example.com"}) {
		t.Errorf("$=R = %q", c.Class("R"))
	}
	if !c.InClass("w", "MAIL.TEST") || !c.InClass("w", "box.posthorn.test") {
		t.Errorf("$=w = %q", c.Class("w"))
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "cannot open '/nonexistent2'") {
		t.Errorf("warnings = %q", c.Warnings)
	}
	for _, tc := range []struct{ in, want string }{
		{"$j ESMTP posthorn $v; $b", "box.posthorn.test ESMTP posthorn " + Version + "; DATE"},
		{"${daemon_name}", "X"},
		{"$?{client_addr}from ${client_addr}$|no client$.", "no client"},
		{"$?{client_addr}from ${client_addr}$|no client$.!", "no client!"},
		{"$?{daemon_name}[$?{nosuch}a$|b$.]$.", "[b]"},
		{"cost $$5", "cost $5"},
		{"$&j", "box.posthorn.test"},
	} {
		if got := c.Expand(tc.in, map[string]string{"b": "DATE"}); got != tc.want {
			t.Errorf("Expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestQualifyFromHosts(t *testing.T) {
	hosts := "127.0.0.1 localhost\n127.0.1.1 refhost.example.org refhost\n# 10.0.0.1 refhost.wrong.example refhost\n"
	if got := qualifyFromHosts("refhost", hosts); got != "refhost.example.org" {
		t.Errorf("got %q", got)
	}
	if got := qualifyFromHosts("other", hosts); got != "other" {
		t.Errorf("got %q", got)
	}
}

func FuzzParse(f *testing.F) {
	seed, _ := os.ReadFile("testdata/debian-submit.cf")
	f.Add(seed)
	f.Add([]byte("O DaemonPortOptions=Port=25\nDj$w.x\nCw a b\n\tcontinued\nO\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newDefault()
		err := c.parse("fuzz.cf", data, func(string) ([]byte, error) { return nil, fs.ErrNotExist })
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Exit == 0 {
				t.Fatalf("error without exit code: %v", err)
			}
			return
		}
		c.settleIdentity(&Identity{Hostname: "h"})
		c.Expand(string(data), nil)
	})
}

// MinFreeBlocks and its short form b take "blocks" or "blocks/maxsize"
// (sendmail's readcf case 'b'); the session limits are posthorn options.
func TestSMTPLimits(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		cf        string
		overrides []Override
		blocks    int64
		size      int64
	}{
		{"O LogLevel=9\n", nil, 100, 0},
		{"O MinFreeBlocks=250\n", nil, 250, 0},
		{"O MinFreeBlocks=250/5000\n", nil, 250, 5000},
		{"Ob4000/12345\n", nil, 4000, 12345},
		{"O MaxMessageSize=7\n", []Override{{Name: "b", Short: true, Value: "0"}}, 0, 7},
		{"O MaxMessageSize=7\n", []Override{{Name: "b", Short: true, Value: "10/8"}}, 10, 8},
	}
	for i, tt := range tests {
		p := filepath.Join(dir, fmt.Sprintf("%d.cf", i))
		if err := os.WriteFile(p, []byte(tt.cf), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(LoadOptions{Path: p, Overrides: tt.overrides, Identity: refIdentity})
		if err != nil {
			t.Fatal(err)
		}
		if c.MinFreeBlocks != tt.blocks || c.MaxMessageSize != tt.size {
			t.Errorf("%q %v: MinFreeBlocks %d MaxMessageSize %d, want %d %d", tt.cf, tt.overrides, c.MinFreeBlocks, c.MaxMessageSize, tt.blocks, tt.size)
		}
		if i == 0 && (c.MaxRecipientsPerMessage != 1000 || c.Timeout("command") != 5*time.Minute ||
			c.MaxSessionTime != time.Hour || c.MaxSessionCommands != 10000) {
			t.Errorf("defaults: rcpts %d command %v session %v/%d", c.MaxRecipientsPerMessage, c.Timeout("command"), c.MaxSessionTime, c.MaxSessionCommands)
		}
	}
	p := filepath.Join(dir, "bad.cf")
	os.WriteFile(p, []byte("O MinFreeBlocks=10/lots\n"), 0o644)
	if _, err := Load(LoadOptions{Path: p, Identity: refIdentity}); err == nil || !strings.Contains(err.Error(), `MinFreeBlocks: invalid number "lots"`) {
		t.Errorf("bad MinFreeBlocks: %v", err)
	}
}

// SingleThreadDelivery is interpreted, and only with HostStatusDirectory:
// without it, sendmail's warning and the option off (main.c).
func TestSingleThreadDelivery(t *testing.T) {
	const warn = "Warning: HostStatusDirectory required for SingleThreadDelivery"
	c := load(t, "testdata/debian-sendmail.cf", Override{Name: "SingleThreadDelivery", Value: "True"})
	if c.SingleThreadDelivery || !slices.Contains(c.Warnings, warn) {
		t.Errorf("without HostStatusDirectory: on=%v warnings %q", c.SingleThreadDelivery, c.Warnings)
	}
	c = load(t, "testdata/debian-sendmail.cf", Override{Name: "SingleThreadDelivery"},
		Override{Name: "HostStatusDirectory", Value: ".hoststat"})
	if !c.SingleThreadDelivery || slices.Contains(c.Warnings, warn) {
		t.Errorf("with HostStatusDirectory: on=%v warnings %q", c.SingleThreadDelivery, c.Warnings)
	}
	if slices.Contains(c.NotInterpreted, "option SingleThreadDelivery") || slices.Contains(IgnoredOptions(), "SingleThreadDelivery") {
		t.Error("SingleThreadDelivery reported as not interpreted")
	}
	if c = load(t, "testdata/debian-sendmail.cf"); c.SingleThreadDelivery {
		t.Error("on by default")
	}
}
