package conf

import (
	"os"
	"strings"
	"testing"
)

// The fallback for builds without the Makefile is the release the VERSION
// file names, so bumping one without the other fails here.
func TestVersionFallbackIsVERSIONFile(t *testing.T) {
	b, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(b)); Version != want {
		t.Errorf("conf.Version = %q, VERSION file says %q", Version, want)
	}
}

func TestHonouredOptions(t *testing.T) {
	got := map[string]OptionDoc{}
	for _, o := range HonouredOptions() {
		if _, dup := got[o.Name]; dup {
			t.Errorf("%s listed twice", o.Name)
		}
		got[o.Name] = o
	}
	for _, want := range []OptionDoc{
		{Name: "QueueDirectory", Short: 'Q', Default: "/var/spool/mqueue"},
		{Name: "DefaultUser", Short: 'u', Default: "mail:mail"},
		{Name: "HostStatusDirectory"},
		{Name: "Timeout", Short: 'r'},
		{Name: "Timeout.queuewarn", Default: "4h"},
		{Name: "MailSpoolDirectory", Default: "/var/mail", Posthorn: true},
		{Name: "ResolverServers", Posthorn: true},
	} {
		if got[want.Name] != want {
			t.Errorf("%s: got %+v, want %+v", want.Name, got[want.Name], want)
		}
	}
	// What the page lists is what the configuration reader interprets: a
	// listed option is never reported as not interpreted, an ignored one is.
	for name := range got {
		c := newDefault()
		c.NotInterpreted = nil
		c.reported = map[string]bool{}
		v := got[name].Default
		if v == "" {
			v = map[string]string{"DaemonPortOptions": "Port=25", "Timeout": "5m", "RelayHosts": "127.0.0.1"}[name]
		}
		if err := c.setOption(name, v, "test"); err != nil && v != "" {
			t.Errorf("%s=%q: %v", name, v, err)
		}
		if len(c.NotInterpreted) != 0 {
			t.Errorf("%s is listed as honoured but reported %v", name, c.NotInterpreted)
		}
	}
	for _, name := range IgnoredOptions() {
		if _, ok := got[name]; ok {
			t.Errorf("%s both honoured and ignored", name)
		}
		if canonicalOption(name) != name {
			t.Errorf("ignored %q is no option name", name)
		}
	}
}

func TestIgnoredOptionsCoverTheRest(t *testing.T) {
	ignored := strings.Join(IgnoredOptions(), " ")
	for _, name := range []string{"AliasWait", "QueueLA", "Timeout.ident", "UseMSP"} {
		if !strings.Contains(" "+ignored+" ", " "+name+" ") {
			t.Errorf("%s missing from IgnoredOptions", name)
		}
	}
	if n, want := len(HonouredOptions())+len(IgnoredOptions()), len(knownOptions)+len(posthornOptions)+len(timeoutNames); n != want {
		t.Errorf("honoured + ignored = %d names, sendmail's and posthorn's are %d", n, want)
	}
}
