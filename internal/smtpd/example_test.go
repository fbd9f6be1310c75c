package smtpd_test

import (
	"context"
	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/route"
	"net"
	"os"
	"os/user"
	"time"

	"github.com/posthorn/posthorn/internal/policy"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/smtpd/smtpdtest"
)

// Example_daemon shows how a daemon serves one listener: a Limiter per
// listener decides, ServeConn runs each admitted session in its own
// goroutine.
func Example_daemon() {
	srv, err := smtpd.New(smtpd.Config{
		Hostname:   "mail.example.org",
		DaemonName: "MTA",
		Privacy:    smtpd.ParsePrivacy("authwarnings"),
		Policy: &policy.Policy{
			RelayHosts: policy.DefaultRelayHosts(),
			Router:     route.New(route.Config{Names: addr.NewNames("mail.example.org", "localhost")}),
		},
		Backend:  smtpdtest.Reference(), // the real one wraps aliases + queue
		Resolver: net.DefaultResolver,
	})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lim := &policy.Limiter{MaxChildren: 100, RatePerSec: 0}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			release, delay, refuse := lim.Admit(time.Now())
			if refuse != nil {
				srv.Refuse(conn, refuse)
				continue
			}
			go func() {
				defer release()
				time.Sleep(delay)
				_ = srv.ServeConn(ctx, conn)
			}()
		}
	}()
	ln.Close()
	// Output:
}

// Example_bs is "sendmail -bs": one session on stdin and stdout.
func Example_bs() {
	srv, _ := smtpd.New(smtpd.Config{Hostname: "mail.example.org", Backend: smtpdtest.Reference()})
	name := "root"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if false { // not run: it would wait for input
		_ = srv.ServeStdio(context.Background(), os.Stdin, os.Stdout, name)
	}
	// Output:
}
