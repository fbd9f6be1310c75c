package test

import (
	"os"
	"strings"
	"testing"
)

// TestRelayReloadSmartHost: after the smart host is changed in the cf
// and the daemon gets SIGHUP, mail accepted from then on goes to the new
// smart host, as with sendmail (which restarts itself on SIGHUP).
func TestRelayReloadSmartHost(t *testing.T) {
	oldIP, newIP := hopIP(t), hopIP(t)
	r := newRoot(t, "O DeliveryMode=background", "O RelayHosts=127.0.0.1/32", "DS["+oldIP+"]")
	writeAliases(t, r, "postmaster: root\n")
	run(t, binary(t), "", "-C", r.cf, "-bi")
	oldHop, newHop := startSink(t, oldIP+":25", nil), startSink(t, newIP+":25", nil)
	cmd := startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	if err := sendMail(r.addr(), "root@posthorn.test", []string{"before@remote.example"}, "Subject: before\r\n\r\nbody\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first message at the old smart host", func() bool { return len(oldHop.messages()) == 1 })

	cf, _ := os.ReadFile(r.cf)
	os.WriteFile(r.cf, []byte(strings.ReplaceAll(string(cf), "DS["+oldIP+"]", "DS["+newIP+"]")), 0o644)
	c2, _ := reloadGreeting(t, r, cmd)
	c2.Close()
	if err := sendMail(r.addr(), "root@posthorn.test", []string{"after@remote.example"}, "Subject: after\r\n\r\nbody\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second message at a smart host", func() bool { return len(oldHop.messages())+len(newHop.messages()) == 2 })
	if m := newHop.messages(); len(m) != 1 || m[0].Rcpts[0] != "after@remote.example" {
		t.Errorf("after SIGHUP the new smart host got %d messages, the old one %d", len(m), len(oldHop.messages())-1)
	}
}
