package smtpd_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/route"
	"net"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/policy"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/smtpd/smtpdtest"
)

// exampleNow is the clock of the examples, so that their output is fixed.
func exampleNow() time.Time { return time.Date(2026, 11, 25, 4, 25, 50, 0, time.UTC) }

// Example_daemon shows how a daemon serves one listener: a Limiter per
// listener decides, ServeConn runs each admitted session in its own
// goroutine. A client then connects and says QUIT.
func Example_daemon() {
	srv, err := smtpd.New(smtpd.Config{
		Hostname:   "mail.example.org",
		DaemonName: "MTA",
		Privacy:    smtpd.ParsePrivacy("authwarnings"),
		Policy: &policy.Policy{
			RelayHosts: policy.DefaultRelayHosts(),
			Router:     route.New(route.Config{Names: addr.NewNames("mail.example.org", "localhost")}),
		},
		Backend: smtpdtest.Reference(), // the real one wraps aliases + queue
		// Resolver: net.DefaultResolver in the daemon; none here, so the
		// client is "[127.0.0.1]" wherever the example runs.
		Now: exampleNow,
	})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
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

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, cmd := range []string{"", "HELO client.example", "QUIT"} {
		if cmd != "" {
			fmt.Fprintf(c, "%s\r\n", cmd)
		}
		line, _ := r.ReadString('\n')
		fmt.Print(strings.TrimRight(line, "\r\n"), "\n")
	}
	// Output:
	// 220 mail.example.org ESMTP posthorn; Wed, 25 Nov 2026 04:25:50 GMT
	// 250 mail.example.org Hello [127.0.0.1], pleased to meet you
	// 221 2.0.0 mail.example.org closing connection
}

// Example_bs is "sendmail -bs": one session on standard input and output
// (here a pipe the lines are written to one by one, as a user or a program
// such as mutt would, and a buffer); the backend gets the message with
// the Received header as a field.
func Example_bs() {
	be := smtpdtest.Reference()
	srv, err := smtpd.New(smtpd.Config{Hostname: "mail.example.org", Backend: be, Now: exampleNow})
	if err != nil {
		panic(err)
	}
	stdin, user := net.Pipe()
	go func() {
		for _, l := range []string{"EHLO localclient", "MAIL FROM:<root>", "RCPT TO:<alice>", "DATA", "Subject: hello\r\n\r\nHello Alice.\r\n.", "QUIT"} {
			fmt.Fprintf(user, "%s\r\n", l)
		}
		user.Close()
	}()
	var stdout bytes.Buffer
	_ = srv.ServeStdio(context.Background(), stdin, &stdout, "root")
	fmt.Print(strings.ReplaceAll(stdout.String(), "\r\n", "\n"))
	m := be.Stored()[0]
	fmt.Printf("--- stored %s for %s:\nReceived: %s\n%s", m.Env.ID, m.Env.Rcpts[0].Addr, m.Env.Received, m.Data)
	// Output:
	// 220 mail.example.org ESMTP posthorn; Wed, 25 Nov 2026 04:25:50 GMT
	// 250-mail.example.org Hello root@localhost, pleased to meet you
	// 250-ENHANCEDSTATUSCODES
	// 250-PIPELINING
	// 250-EXPN
	// 250-VERB
	// 250-8BITMIME
	// 250-SIZE
	// 250-DSN
	// 250-ETRN
	// 250-DELIVERBY
	// 250 HELP
	// 250 2.1.0 <root>... Sender ok
	// 250 2.1.5 <alice>... Recipient ok
	// 354 End data with <CR><LF>.<CR><LF>
	// 250 2.0.0 ID000002 Message accepted for delivery
	// 221 2.0.0 mail.example.org closing connection
	// --- stored ID000002 for alice:
	// Received: from localclient (root@localhost)
	// 	by mail.example.org (posthorn) with ESMTP id ID000002
	// 	for <alice>; Wed, 25 Nov 2026 04:25:50 GMT
	// Subject: hello
	//
	// Hello Alice.
}
