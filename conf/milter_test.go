package conf

import (
	"reflect"
	"strings"
	"testing"
)

func TestMailFilterLines(t *testing.T) {
	c := load(t, "testdata/milter.cf")
	want := []string{"opendkim, S=inet:8891@127.0.0.1, F=T, \tT=C:10s;R:30s", "clamav, S=local:/run/clamav/clamav-milter.ctl, F="}
	if !reflect.DeepEqual(c.MailFilters, want) {
		t.Errorf("MailFilters = %q, want %q", c.MailFilters, want)
	}
	for name, v := range map[string]string{"InputMailFilters": "opendkim, clamav", "Milter.LogLevel": "12", "Milter.macros.eom": "{msg_id}"} {
		if c.Values[name] != v {
			t.Errorf("Values[%s] = %q, want %q", name, c.Values[name], v)
		}
	}
	for _, n := range c.NotInterpreted {
		if strings.Contains(n, "filter") || strings.Contains(n, "Milter") {
			t.Errorf("reported as not interpreted: %s", n)
		}
	}
}

// The K lines of FEATURE(access_db), FEATURE(mailertable) and
// FEATURE(virtusertable) name the tables (their makemap source) unless
// the option is set; the command line sets it too.
func TestTablesFromKLines(t *testing.T) {
	c := load(t, "testdata/tables-k.cf")
	if c.AccessFile != "/srv/mail/access" || c.VirtUserTable != "/srv/mail/virtusertable" {
		t.Errorf("AccessFile %q, VirtUserTable %q: want the K lines' files", c.AccessFile, c.VirtUserTable)
	}
	if c.MailerTable != "/srv/other/mailertable" {
		t.Errorf("MailerTable %q: the O line wins over the K line", c.MailerTable)
	}
	c = load(t, "testdata/tables-k.cf", Override{Name: "VirtUserTable", Value: "/cmd/vt"})
	if c.VirtUserTable != "/cmd/vt" {
		t.Errorf("VirtUserTable %q with -O: want /cmd/vt", c.VirtUserTable)
	}
	if c := load(t, "testdata/milter.cf"); c.VirtUserTable != "/etc/mail/virtusertable" {
		t.Errorf("without a K line VirtUserTable is %q", c.VirtUserTable)
	}
}

// DaemonPortOptions' InputMailFilters= is sendmail's per-listener filter
// list (for MAIL_FILTER lines), ';'-separated.
func TestDaemonInputMailFilters(t *testing.T) {
	c := load(t, "testdata/milter.cf", Override{Name: "DaemonPortOptions", Value: "Port=587, Name=MSA, M=Ea, InputMailFilters=clamav;opendkim"})
	var found bool
	for _, d := range c.Daemons {
		if d.Name == "MSA" {
			found = true
			if d.InputMailFilters != "clamav;opendkim" || d.Modifiers != "Ea" {
				t.Errorf("MSA listener %+v", d)
			}
		}
	}
	if !found {
		t.Errorf("no MSA listener in %+v", c.Daemons)
	}
}
