package queue

import "testing"

func TestControlRoundTrip(t *testing.T) {
	tests := []struct {
		line string
		want Control
		log  string
	}{
		{"bob:1001:1001:carol", Control{User: "bob", UID: 1001, GID: 1001, Addr: "carol"}, "carol (1001/1001)"},
		{"mail:8:0:staff", Control{User: "mail", UID: 8, GID: 0, Addr: "staff"}, "staff (8/0)"},
		{":to-prog", Control{Addr: "to-prog"}, "to-prog (0/0)"},
		{"::include:/etc/mail/lists/incl.list", Control{Addr: ":include:/etc/mail/lists/incl.list"}, ":include:/etc/mail/lists/incl.list (0/0)"},
		{":bob", Control{Addr: "bob"}, "bob (0/0)"},
		{"alice:1000:1000::include:/home/alice/list", Control{User: "alice", UID: 1000, GID: 1000, Addr: ":include:/home/alice/list"}, ":include:/home/alice/list (1000/1000)"},
	}
	for _, tt := range tests {
		got := ParseControl(tt.line)
		if got != tt.want {
			t.Errorf("ParseControl(%q) = %+v, want %+v", tt.line, got, tt.want)
		}
		if s := got.String(); s != tt.line {
			t.Errorf("String() = %q, want %q", s, tt.line)
		}
		if l := got.LogAddr(); l != tt.log {
			t.Errorf("LogAddr() = %q, want %q", l, tt.log)
		}
	}
}
