package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/posthorn/posthorn/conf"
)

// serveGreeting is the daemon's session until internal/smtpd is wired in:
// the configured 220 greeting and sendmail's answer to QUIT.
func serveGreeting(ctx context.Context, cfg *conf.Config, conn net.Conn) {
	j := cfg.Macros["j"]
	greeting := cfg.Expand(cfg.SmtpGreetingMessage, map[string]string{"b": time.Now().Format(time.RFC1123Z)})
	// sendmail inserts " ESMTP" after the first word when the greeting
	// does not say it.
	if first, rest, _ := strings.Cut(greeting, " "); !strings.Contains(greeting, "ESMTP") {
		greeting = first + " ESMTP " + rest
	}
	w := bufio.NewWriter(conn)
	r := bufio.NewReader(conn)
	fmt.Fprintf(w, "220 %s\r\n", greeting)
	w.Flush()
	for {
		conn.SetReadDeadline(time.Now().Add(cfg.Timeout("command")))
		line, err := r.ReadString('\n')
		if err != nil || ctx.Err() != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.EqualFold(verb, "QUIT") {
			fmt.Fprintf(w, "221 2.0.0 %s closing connection\r\n", j)
			w.Flush()
			return
		}
		fmt.Fprintf(w, "502 5.5.1 Command not implemented: %q\r\n", strings.TrimSpace(line))
		w.Flush()
	}
}
