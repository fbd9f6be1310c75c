package addrtest

import (
	"context"
	"flag"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/resolve"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/status"
)

var update = flag.Bool("update", false, "rewrite the golden files")

type fakeDNS map[string][]resolve.MX

func (f fakeDNS) Exchangers(_ context.Context, d string) ([]resolve.MX, error) {
	if mx, ok := f[d]; ok {
		return mx, nil
	}
	return nil, status.New(550, "5.1.2", "Host unknown (Name server: %s: host not found)", d)
}

func (f fakeDNS) Addrs(_ context.Context, h string) ([]netip.Addr, error) {
	if h == "mx.remote.example" {
		return []netip.Addr{netip.MustParseAddr("127.0.0.10")}, nil
	}
	return nil, status.New(550, "5.1.2", "Host unknown (Name server: %s: host not found)", h)
}

func env(t *testing.T) Env {
	mt, err := route.ParseMailerTable(strings.NewReader("example.com esmtp:[mail.example.com]\nbad.example error:5.7.1:550 no mail here\n"))
	if err != nil {
		t.Fatal(err)
	}
	aliases := map[string]string{"postmaster": "root", "staff": "alice, bob"}
	return Env{
		Router:  route.New(route.Config{Names: addr.NewNames("refhost.example.org", "localhost", "[127.0.0.1]"), MailerTable: mt}),
		Macros:  map[string]string{"j": "refhost.example.org", "w": "refhost", "v": "0.1"},
		Classes: map[string][]string{"w": {"refhost.example.org", "localhost", "[127.0.0.1]"}},
		Expand: func(s string, m map[string]string) string {
			for k, v := range m {
				s = strings.ReplaceAll(s, "$"+k, v)
			}
			return s
		},
		Aliases: func(k string) (string, bool, error) { v, ok := aliases[k]; return v, ok, nil },
		Mailer:  mt.Get,
		Access: func(k string) (string, bool) {
			if strings.EqualFold(k, "Connect:127") {
				return "RELAY", true
			}
			return "", false
		},
		Resolver: fakeDNS{
			"remote.example": {{Host: "mx.remote.example", Pref: 10}},
			"multi.example":  {{Host: "mx1.multi.example", Pref: 10}, {Host: "mx2.multi.example", Pref: 20}},
			"nomx.example":   {{Host: "nomx.example", Implicit: true}},
		},
		Mailers: []Mailer{{Name: "local", Path: "[mbox]", Flags: "lsDFMAw5:/|@qPSXnz9m", Note: "mailboxes"}, {Name: "esmtp", Path: "[IPC]", Flags: "mDFMuXa", Note: "SMTP client"}},
	}
}

// TestSession runs the reference's -bt script (scripts/bt-session.txt)
// plus posthorn's routing cases and compares with a golden transcript.
func TestSession(t *testing.T) {
	in := `3,0 user@host
3,0 alice@localhost
3,0 someone@remote.example
/parse user@remote.example
/parse alice
/parse Alice Example <alice%remote.example@localhost>
/parse <@x@remote.example:someuser>
/parse u@example.com
/parse u@bad.example
/mx remote.example
/mx multi.example
/mx nomx.example
/mx nxdomain.invalid
$=w
$j
$w
$v
.Dxhello
$x
/expand $j $w $v
/map aliases root
/map aliases postmaster
/map aliases staff
/map mailertable example.com
/map access Connect:127
/map nosuch key
/tryflags
/try local user
/try local alice@refhost.example.org
/try esmtp user@remote.example
/tryflags ES
/try esmtp user
/try carrier x
/canon nomx.example
/gethostbyname mx.remote.example
/sender alice
=M
=S0
/bogus
?
/quit
$j
`
	var out strings.Builder
	Run(strings.NewReader(in), &out, env(t))
	golden := "testdata/session.txt"
	if *update {
		os.WriteFile(golden, []byte(out.String()), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("session:\n%s\nwant:\n%s", out.String(), want)
	}
}
