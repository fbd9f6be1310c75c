package test

import (
	"strings"
	"testing"
)

// TestRelayQueueRunReusesConnection: one queue run over three jobs for
// the same host opens one connection: the second and third job use the
// cached one (after an RSET), and the run says QUIT when it ends.
func TestRelayQueueRunReusesConnection(t *testing.T) {
	ip := hopIP(t)
	e := newRelayEnv(t, oneMX("cache.example", ip))
	s := startSink(t, ip+":25", nil)
	for _, rcpt := range []string{"one@cache.example", "two@cache.example", "three@cache.example"} {
		if got := run(t, binary(t), relayMsg, "-C", e.r.cf, "-X", e.log, "-odq", rcpt); got.code != 0 {
			t.Fatalf("-odq: %+v", got)
		}
	}
	got := e.queueRun(t)
	if n := s.connections(); n != 1 {
		t.Errorf("%d connections for three jobs, want 1:\n%s", n, got.stdout)
	}
	if n := strings.Count(got.stdout, "... Using cached ESMTP connection to mx.cache.example. via esmtp..."); n != 2 {
		t.Errorf("%d uses of the cached connection, want 2:\n%s", n, got.stdout)
	}
	if !strings.Contains(got.stdout, ">>> RSET") || !strings.HasSuffix(got.stdout, "Closing connection to mx.cache.example.\n>>> QUIT\n221 2.0.0 Bye\n") {
		t.Errorf("-q -v does not probe with RSET and close with QUIT at the end:\n%s", got.stdout)
	}
	if n := len(s.messages()); n != 3 {
		t.Errorf("sink has %d messages, want 3", n)
	}
	if qfs := e.queued(); len(qfs) != 0 {
		t.Errorf("jobs left: %v", qfs)
	}
}

// TestRelayAddressTestMX: sendmail -bt's /mx asks the same resolver as
// the relay client (ResolverServers), best MX first, a host's own name
// when it has only an address (04-sendmail-bt-session.txt).
func TestRelayAddressTestMX(t *testing.T) {
	e := newRelayEnv(t, []string{
		"mx-host=bt.example,mx2.bt.example,20",
		"mx-host=bt.example,mx1.bt.example,10",
		"host-record=mx1.bt.example,127.0.0.1",
		"host-record=mx2.bt.example,127.0.0.1",
		"host-record=amx.example,127.0.0.1",
	})
	got := run(t, binary(t), "/mx bt.example\n/mx amx.example\n/mx nxdomain.example\n", "-C", e.r.cf, "-bt")
	for _, want := range []string{
		"getmxrr(bt.example) returns 2 value(s):\n\tmx1.bt.example.\n\tmx2.bt.example.\n",
		"getmxrr(amx.example) returns 1 value(s):\n\tamx.example.\n",
		"getmxrr(nxdomain.example) returns 0 value(s):",
	} {
		if !strings.Contains(got.stdout, want) {
			t.Errorf("-bt lacks %q:\n%s", want, got.stdout)
		}
	}
}
