// Package smtpdtest provides an in-memory smtpd.Backend and resolver for
// tests: local users, aliases and domains like the sendmail reference
// host (refhost.example.org), messages kept in memory.
package smtpdtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/status"
)

// Message is one accepted message.
type Message struct {
	Env  smtpd.Envelope
	Data []byte
}

// Backend is an in-memory smtpd.Backend.
type Backend struct {
	Hostname     string              // $j, for EXPN/VRFY answers
	Users        map[string]string   // login -> full name
	Forward      map[string]string   // login -> ~/.forward target
	Aliases      map[string][]string // name -> expansion, in sendmail's EXPN order
	LocalDomains map[string]bool     // lower case, "[127.0.0.1]" literals included
	SpaceLimit   int64               // SIZE= above it: 452 (0 = no check)
	EnqueueErr   error               // when set, Enqueue fails with it (after reading)
	// Verbose lines written to the transcript of a VERB session.
	Verbose []string
	// MsgID, when set, is the Message-Id Enqueue reports to
	// env.Accepted (as if it had added one); Deliver is then called, as
	// the real backend delivers after queueing.
	MsgID   string
	Deliver func(env *smtpd.Envelope)

	mu       sync.Mutex
	seq      int
	Messages []Message
	Aborted  int // Enqueue calls whose reader failed
	ETRNs    []string
}

// Reference returns a backend set up like the reference capture host.
func Reference() *Backend {
	return &Backend{
		Hostname: "refhost.example.org",
		Users: map[string]string{
			"root": "root", "alice": "Alice Example", "bob": "Bob Example",
			"carol": "Carol Forward", "dave": "dave",
		},
		Forward: map[string]string{"carol": "bob"},
		Aliases: map[string][]string{
			"mailer-daemon": {"postmaster"},
			"postmaster":    {"root"},
			"abuse":         {"root"},
			"alias-user":    {"alice"},
			"staff":         {"bob", "alice"},
			"bigteam":       {"root", "bob", "alice"},
			"incl-list":     {"alice", "bob"},
			"to-file":       {"/var/tmp/to-file.mbox"},
			"to-prog":       {`"|/usr/bin/logger -t to-prog -p mail.info"`},
			"to-remote":     {"someone@remote.example"},
			"to-accept":     {"user@accept.example"},
			"mixed":         {`"|/bin/cat > /dev/null"`, "/var/tmp/mixed.mbox", "alice", "someone@remote.example"},
			"owner-staff":   {"root"},
		},
		LocalDomains: map[string]bool{
			"localhost": true, "refhost": true, "refhost.example.org": true,
			"[127.0.0.1]": true, "localhost.localdomain": true,
		},
		SpaceLimit: 20000000000,
	}
}

// NewID returns "ID000001", "ID000002", ...
func (b *Backend) NewID() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	return fmt.Sprintf("ID%06d", b.seq)
}

// EnoughSpace implements smtpd.SpaceChecker.
func (b *Backend) EnoughSpace(size int64) bool { return b.SpaceLimit == 0 || size <= b.SpaceLimit }

// CheckSender accepts every sender.
func (b *Backend) CheckSender(context.Context, *smtpd.Client, smtpd.Path) error { return nil }

// Router routes with the backend's LocalDomains as $=w: the one routing
// function of the MTA, so the fake judges addresses as posthorn does.
func (b *Backend) Router() *route.Router {
	names := addr.NewNames()
	for d := range b.LocalDomains {
		names.Add(d)
	}
	return route.New(route.Config{Names: names})
}

// CheckRecipient knows local users and aliases; remote addresses pass.
func (b *Backend) CheckRecipient(_ context.Context, _ *smtpd.Client, _ *smtpd.Envelope, rcpt smtpd.Path, t route.Triple) error {
	if !t.Local {
		return nil
	}
	if t.Mailer == route.Local {
		if _, ok := b.Users[t.User]; ok {
			return nil
		}
		if _, ok := b.Aliases[t.User]; ok {
			return nil
		}
	}
	return status.New(550, "5.1.1", "<%s>... User unknown", rcpt.Addr)
}

// Verify answers VRFY and EXPN from the tables.
func (b *Backend) Verify(_ context.Context, _ *smtpd.Client, arg string, expand bool) ([]smtpd.Expansion, error) {
	a := strings.TrimSpace(arg)
	for len(a) >= 2 && a[0] == '<' && a[len(a)-1] == '>' {
		a = a[1 : len(a)-1]
	}
	t, err := b.Router().ResolveString(a)
	if err != nil {
		return nil, err
	}
	if !t.Local {
		return []smtpd.Expansion{{Code: 252, Addr: a}}, nil
	}
	name := t.User
	if !expand {
		if full, ok := b.Users[name]; ok {
			return []smtpd.Expansion{{FullName: full, Addr: name + "@" + b.Hostname}}, nil
		}
		if _, ok := b.Aliases[name]; ok {
			return []smtpd.Expansion{{Addr: name + "@" + b.Hostname}}, nil
		}
		return nil, status.New(550, "5.1.1", "%s... User unknown", arg)
	}
	var out []smtpd.Expansion
	if !b.expand(name, &out, 0) {
		return nil, status.New(550, "5.1.1", "%s... User unknown", arg)
	}
	return out, nil
}

func (b *Backend) expand(name string, out *[]smtpd.Expansion, depth int) bool {
	if depth > 10 {
		return false
	}
	if list, ok := b.Aliases[name]; ok {
		for _, m := range list {
			switch {
			case strings.HasPrefix(m, "/") || strings.HasPrefix(m, `"|`):
				*out = append(*out, smtpd.Expansion{Addr: m})
			case strings.Contains(m, "@"):
				*out = append(*out, smtpd.Expansion{Addr: m})
			default:
				b.expand(m, out, depth+1)
			}
		}
		return true
	}
	if f, ok := b.Forward[name]; ok {
		return b.expand(f, out, depth+1)
	}
	if full, ok := b.Users[name]; ok {
		*out = append(*out, smtpd.Expansion{FullName: full, Addr: name + "@" + b.Hostname})
		return true
	}
	return false
}

// Enqueue keeps the message once its reader reached io.EOF.
func (b *Backend) Enqueue(_ context.Context, env *smtpd.Envelope, r io.Reader) (string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		b.mu.Lock()
		b.Aborted++
		b.mu.Unlock()
		return "", err
	}
	if b.EnqueueErr != nil {
		return "", b.EnqueueErr
	}
	if b.MsgID != "" && env.Accepted != nil {
		env.Accepted(env.ID, b.MsgID)
	}
	if b.Deliver != nil {
		b.Deliver(env)
	}
	if env.Transcript != nil {
		for _, l := range b.Verbose {
			fmt.Fprintln(env.Transcript, l)
		}
	}
	e := *env
	e.Rcpts = append([]smtpd.Recipient(nil), env.Rcpts...)
	e.Transcript = nil
	b.mu.Lock()
	b.Messages = append(b.Messages, Message{Env: e, Data: data})
	b.mu.Unlock()
	return env.ID, nil
}

// ETRN records the request.
func (b *Backend) ETRN(_ context.Context, _ *smtpd.Client, arg string) error {
	b.mu.Lock()
	b.ETRNs = append(b.ETRNs, arg)
	b.mu.Unlock()
	return nil
}

// Aborts is the number of Enqueue calls whose reader failed.
func (b *Backend) Aborts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Aborted
}

// Stored returns a copy of the accepted messages.
func (b *Backend) Stored() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Message(nil), b.Messages...)
}

// Resolver is a fixed table of PTR and A records.
type Resolver struct {
	PTR map[string]string   // ip -> name
	A   map[string][]string // name -> ips
}

// ReferenceResolver has the reference lab's records: 127.0.0.1 is
// localhost, 127.0.0.67 client.example, 127.0.0.68 forged.example (whose
// A record is 127.0.0.99), 127.0.0.66 has no PTR.
func ReferenceResolver() *Resolver {
	return &Resolver{
		PTR: map[string]string{"127.0.0.1": "localhost", "127.0.0.67": "client.example.", "127.0.0.68": "forged.example."},
		A: map[string][]string{
			"localhost": {"127.0.0.1"}, "client.example": {"127.0.0.67"}, "forged.example": {"127.0.0.99"},
		},
	}
}

// LookupAddr implements smtpd.Resolver.
func (r *Resolver) LookupAddr(_ context.Context, addr string) ([]string, error) {
	if n, ok := r.PTR[addr]; ok {
		return []string{n}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: addr, IsNotFound: true}
}

// LookupHost implements smtpd.Resolver.
func (r *Resolver) LookupHost(_ context.Context, host string) ([]string, error) {
	if a, ok := r.A[strings.TrimSuffix(host, ".")]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}
