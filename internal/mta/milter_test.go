package mta

import (
	"testing"

	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/internal/milter"
)

// A listener's InputMailFilters= replaces the option's list for it, in
// its order; the other listeners keep the option's.
func TestListenerFilters(t *testing.T) {
	cfg := &conf.Config{Values: map[string]string{"InputMailFilters": "a"}}
	xl := []string{"a, S=inet:1@127.0.0.1", "b, S=inet:2@127.0.0.1", "c, S=inet:3@127.0.0.1"}
	for _, tc := range []struct {
		port conf.DaemonPort
		want string
	}{
		{conf.DaemonPort{Name: "MTA"}, "a"},
		{conf.DaemonPort{Name: "MSA", InputMailFilters: "c;b"}, "cb"},
	} {
		mc, err := milter.Configure(milter.Options{XLines: xl, InputMailFilters: inputFilters(cfg, tc.port)})
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, f := range mc.Filters {
			got += f.Name
		}
		if got != tc.want {
			t.Errorf("%s: filters %q, want %q", tc.port.Name, got, tc.want)
		}
	}
}
