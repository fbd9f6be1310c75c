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
