package policy

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestClientLimitLookup(t *testing.T) {
	a, err := ParseAccess(strings.NewReader(`ClientRate:10.1.2.3 2
ClientRate:10.1 10
ClientRate: 20
ClientRate:127.0.0.1 0
ClientConn:10.1.2 3
clientconn:IPv6:2001:db8::1 1
10.9 REJECT
Connect:10.1.2.3 RELAY
ClientRate:10.7 lots
`), "access")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tag, ip string
		want    int
	}{
		{"ClientRate", "10.1.2.3", 2},
		{"ClientRate", "10.1.9.9", 10},
		{"ClientRate", "192.0.2.1", 20},
		{"ClientRate", "127.0.0.1", 0},
		{"ClientRate", "::ffff:10.1.2.3", 2},
		{"ClientRate", "10.7.0.1", 0}, // not a number: no limit
		{"ClientRate", "10.9.0.1", 20},
		{"ClientConn", "10.1.2.99", 3},
		{"ClientConn", "10.1.3.1", 0},
		{"ClientConn", "2001:db8::1", 1},
	} {
		if got := a.ClientLimit(tc.tag, netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.tag, tc.ip, got, tc.want)
		}
	}
	if d := a.Connect(netip.MustParseAddr("10.1.2.3"), ""); d.Action != Relay {
		t.Errorf("the ClientRate: entries change Connect: %+v", d)
	}
	var none *Access
	if none.ClientLimit("ClientRate", netip.MustParseAddr("10.1.2.3")) != 0 || none.CheckClient(netip.MustParseAddr("10.1.2.3"), 100, 100) != nil {
		t.Error("no access file limits someone")
	}
}

func TestClientCounter(t *testing.T) {
	c := &ClientCounter{Window: 16 * time.Second}
	ip := netip.MustParseAddr("192.0.2.1")
	other := netip.MustParseAddr("192.0.2.2")
	t0 := time.Unix(1_800_000_000, 0)
	var leaves []func()
	for i := 1; i <= 5; i++ {
		open, rate, leave := c.Arrive(ip, t0.Add(time.Duration(i)*time.Second))
		if open != i || rate != i {
			t.Fatalf("connection %d: open %d rate %d", i, open, rate)
		}
		leaves = append(leaves, leave)
	}
	if open, rate, _ := c.Arrive(other, t0.Add(5*time.Second)); open != 1 || rate != 1 {
		t.Errorf("another client: open %d rate %d", open, rate)
	}
	for _, l := range leaves {
		l()
		l() // twice is once
	}
	// 10 s on: all five still in the window, none open.
	if open, rate, leave := c.Arrive(ip, t0.Add(15*time.Second)); open != 1 || rate != 6 {
		t.Errorf("within the window: open %d rate %d", open, rate)
	} else {
		leave()
	}
	// a window and more later: only this one.
	if open, rate, leave := c.Arrive(ip, t0.Add(40*time.Second)); open != 1 || rate != 1 {
		t.Errorf("after the window: open %d rate %d", open, rate)
	} else {
		leave()
	}
	// quiet clients are forgotten
	c.Arrive(netip.MustParseAddr("192.0.2.3"), t0.Add(100*time.Second))
	if n := c.Clients(); n != 2 { // 192.0.2.2 is still open; .3 just came
		t.Errorf("%d clients remembered, want 2", n)
	}
}

func TestCheckClient(t *testing.T) {
	a, _ := ParseAccess(strings.NewReader("ClientRate: 3\nClientConn: 2\n"), "access")
	ip := netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		open, rate int
		want       string
	}{
		{1, 1, ""},
		{2, 3, ""},
		{3, 1, "421 4.3.2 Too many open connections."},
		{1, 4, "421 4.3.2 Connection rate limit exceeded."},
	} {
		got := ""
		if e := a.CheckClient(ip, tc.open, tc.rate); e != nil {
			got = e.Error()
		}
		if got != tc.want {
			t.Errorf("open %d rate %d: %q, want %q", tc.open, tc.rate, got, tc.want)
		}
	}
}
