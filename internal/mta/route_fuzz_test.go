package mta

import (
	"context"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/aliases"
	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/queue"
)

// everyone is a password database in which every plain name exists, with
// a home that has no .forward.
type everyone struct{ home string }

func (e everyone) Lookup(name string) (*aliases.User, error) {
	if name == "" || strings.ContainsAny(name, "/:\x00\"\\") {
		return nil, aliases.ErrNoUser
	}
	return &aliases.User{Name: name, UID: 1000, GID: 1000, Home: e.home}, nil
}

func (e everyone) LookupID(uid int) (*aliases.User, error) {
	return &aliases.User{Name: "u", UID: uid, GID: uid, Home: e.home}, nil
}

// FuzzRelayVersusDelivery holds the RCPT-time relay decision against what
// delivery does with the same recipient, through the real path: the RCPT
// argument is parsed and routed as the SMTP server does for the relay
// check; the backend queues "<addr>", which acceptance expands (aliases
// off: no alias may legitimately send it elsewhere) into qf addresses;
// the queue runner routes those. Whatever the relay check calls local
// (what an outsider may send) must be delivered on this host, and what it
// calls remote must go to the domain it judged.
func FuzzRelayVersusDelivery(f *testing.F) {
	for _, s := range []string{
		"<alice@localhost>", "<@x@remote.example:someuser>", "<@remote.example:nosuchuser@localhost>",
		"<@[192.0.2.99]:user@localhost>", "<alice%remote.example@localhost>", "<remote.example!alice@localhost>",
		"<@localhost:alice@remote.example>", `<"a@remote.example"@localhost>`, "<a!b!c@localhost>", "<u@[127.0.0.1]>",
		"<u@[192.0.2.1]>", `<\alice@localhost>`, "<Alice@LOCALHOST.>", "<a%b%c@localhost>", "<@a,@b:u@c>",
		"<u%localhost@remote.example>", "<user@localhost.>", "<(c) u@localhost>", "<u@shop.example>",
	} {
		f.Add(s)
	}
	mt, err := route.ParseMailerTable(strings.NewReader("shop.example local:root\nexample.com esmtp:[10.0.0.1]\n"))
	if err != nil {
		f.Fatal(err)
	}
	rt := route.New(route.Config{Names: addr.NewNames("localhost", "refhost.example.org", "[127.0.0.1]"), MailerTable: mt})
	x := aliases.New(aliases.Options{Router: rt, Users: everyone{home: f.TempDir()}})
	qx := acceptExpander{x}
	delivery := routerOf(rt)
	f.Fuzz(func(t *testing.T, arg string) {
		a, _, err := addr.ParsePath(arg, addr.Recipient)
		if err != nil || a.Null || a.Has(addr.Program) || a.Has(addr.File) {
			return // refused at RCPT
		}
		judged := rt.Resolve(a)
		finals, err := qx.Expand("<" + a.String() + ">")
		if err != nil {
			return // refused at DATA
		}
		for _, fin := range finals {
			got, err := delivery.Route(context.Background(), &queue.Job{}, &queue.Recipient{Addr: fin.Addr})
			if err != nil {
				continue // a failure returned to the sender: nothing leaves
			}
			remote := route.IsSMTP(got.Mailer)
			switch {
			case judged.Local && remote:
				t.Fatalf("%q: the relay check saw a local %s, delivery sends %q to %s %s", arg, judged.User, fin.Addr, got.Mailer, got.Host)
			case !judged.Local && remote && !strings.EqualFold(domainOf(got.User), judged.Domain):
				t.Fatalf("%q: the relay check judged %s, delivery sends %q to %s", arg, judged.Domain, fin.Addr, got.User)
			}
		}
	})
}

func domainOf(a string) string {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return a[i+1:]
	}
	return ""
}
