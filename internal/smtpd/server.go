// Package smtpd is posthorn's ESMTP server: sendmail 8's dialogue (RFC
// 5321 with sendmail's reply texts and enhanced status codes, RFC 2034),
// for the daemon's listeners and for "sendmail -bs" on stdin/stdout.
//
// # Dialogue
//
// The server greets with "220 <Greeting>" and then reads one command line
// at a time (at most 2048 bytes including the line end; CRLF or a bare LF
// ends a command). Commands are matched case-insensitively by their first
// word against a table (commands.go) that says, for each, which tarpit
// counter it feeds and whether it is served after a protocol violation.
//
//	HELO/EHLO  name                greets (EHLO lists the extensions), resets the transaction
//	MAIL FROM:<path> [params]      SIZE BODY RET ENVID AUTH BY; starts a transaction, new queue ID
//	RCPT TO:<path> [params]        NOTIFY ORCPT; relay check (package policy), then Backend
//	DATA                           354, message up to "." alone on a line, then 250 <ID>
//	RSET, NOOP, QUIT, VERB, HELP [topic]
//	VRFY, EXPN  addr               via Backend.Verify, subject to PrivacyOptions
//	ETRN  host|@domain             Backend.ETRN
//	STARTTLS, AUTH PLAIN|LOGIN     when configured; AUTH only over TLS
//
// Replies are buffered and written when no more client input is waiting,
// so a pipelining client gets its replies in one write.
//
// # Defence
//
// As sendmail 8.18 (Debian's 8.17 backport): a bare LF or bare CR inside
// DATA ends the session with 421 and nothing is stored; input that arrives
// before the EHLO/HELO reply or before the 354 is a protocol violation
// (554 5.5.0, then "550 5.0.0 Command rejected" for further commands,
// and the connection is closed for DATA); an over-long command line gets
// 421 4.7.0 "Command too long" and an HTTP request as the first command
// 421 4.7.0 "Rejecting open proxy", both closing the connection. Repeated
// HELO/EHLO (3), VRFY/EXPN (6), ETRN (8) and NOOP/VERB (20) commands are
// delayed 1, 2, 4 ... seconds (at most 240) each, and after
// BadRcptThrottle rejected recipients every further RCPT waits a second.
// The HELO/EHLO argument is checked as srvrsmtp.c does (heloName). Beyond
// sendmail, a session ends after MaxSessionTime or MaxSessionCommands,
// and a client that sends nothing for Timeouts.Command gets "421 4.4.1
// <host> Lost input channel from <client>". An idle session holds no
// input buffer (inbuf).
//
// # Message handed to the backend
//
// Backend.Enqueue reads the client's text with LF line ends, and gets the
// Received header sendmail would write as Envelope.Received:
//
//	Received: from <helo> (<ptr> [<ip>])
//		by <$j> (<Version>) with ESMTP id <ID>
//		for <rcpt>; <date>
//
// ("for" only when the envelope has exactly one recipient: refused RCPTs
// do not count, RCPTs with the same canonical form are one; "([ip])"
// without PTR, "(may be forged)" after the bracket when the PTR does not
// resolve back; "(user@localhost)" for -bs; with ESMTPS/ESMTPA/ESMTPSA and
// a TLS line after STARTTLS/AUTH).
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/policy"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/status"
)

// Timeouts are the server's read timeouts (sendmail's Timeout.* options).
type Timeouts struct {
	Command   time.Duration // waiting for a command line; default 5m (RFC 5321 4.5.3.2.7)
	DataBlock time.Duration // waiting for each piece of DATA; default 5m
	Data      time.Duration // the whole DATA phase; default 1h
	Resolve   time.Duration // the client's reverse and forward DNS lookups; default 10s
	Write     time.Duration // writing a reply; default 5m
}

// Config is one listener's configuration. The daemon builds one per
// DaemonPortOptions entry; -bs builds one for stdin/stdout.
type Config struct {
	// Hostname is $j, the canonical host name used in replies.
	Hostname string
	// Greeting is SmtpGreetingMessage with its macros expanded except $b,
	// which is replaced by the date of each connection. If it lacks
	// "ESMTP", " ESMTP" is inserted after the first word, as sendmail
	// does. Default: "<Hostname> ESMTP <Version>; $b".
	Greeting string
	// Version is the name and version in Received headers and HELP,
	// e.g. "posthorn 0.1" (default "posthorn").
	Version string
	// HelpFile is sendmail's HelpFile: HELP answers from it, in sendmail's
	// helpfile format, when it is set and a readable regular file; from the
	// embedded sendmail texts otherwise.
	HelpFile string
	// ExpandMacros expands sendmail macros in HelpFile texts ("#vers 2"
	// files); nil expands only $v (Version) and $j (Hostname).
	ExpandMacros func(string) string
	// DaemonName is the listener's Name= (log lines: daemon=MTA).
	DaemonName string
	// RequireAuth is M=Ea: MAIL needs a prior AUTH, and MAIL FROM must
	// belong to the authenticated user.
	RequireAuth bool
	// MaxMessageSize in bytes; 0 means no limit.
	MaxMessageSize int64
	// MaxRecipients is MaxRecipientsPerMessage: further RCPTs get "452
	// 4.5.3 Too many recipients"; 0 means no limit (posthorn's conf
	// default is 1000).
	MaxRecipients int
	// MaxSessionTime and MaxSessionCommands bound a whole session
	// (posthorn's options; sendmail has no such limit): once the session
	// is that old, or has sent that many commands, the server answers
	// "421 4.7.0 <host> Session too long; closing connection" or "421
	// 4.7.0 <host> Too many commands; closing connection" instead of
	// reading another command. A message in DATA is not cut short (it
	// has Timeouts.Data). 0 means no limit.
	MaxSessionTime     time.Duration
	MaxSessionCommands int
	// MaxHopCount: a message with more Received headers is refused
	// (554 5.4.6 Too many hops). Default 25.
	MaxHopCount int
	// Privacy is PrivacyOptions (see ParsePrivacy).
	Privacy Privacy
	// BadRcptThrottle: after this many rejected RCPTs in a transaction
	// each further RCPT waits a second. 0 disables (sendmail's default;
	// Debian sets 3).
	BadRcptThrottle int
	// GreetPause: wait this long before the greeting; a client that talks
	// first gets "554 <host> ESMTP not accepting messages". 0 disables.
	GreetPause time.Duration
	Timeouts   Timeouts
	// TLS enables STARTTLS (session tickets are turned off).
	TLS *tls.Config
	// Auth enables AUTH PLAIN and LOGIN once TLS is active.
	Auth Authenticator
	// Policy makes relay and access decisions; nil means a policy with
	// the default RelayHosts and no local domains.
	// SenderDomain checks that the MAIL FROM domain exists (sendmail's
	// 553 5.1.8 / 451 4.1.8, *resolve.Resolver.CheckSender); nil: no
	// check (FEATURE(accept_unresolvable_domains)).
	SenderDomain func(ctx context.Context, sender string) error
	Policy       *policy.Policy
	// Backend is required.
	Backend Backend
	// Resolver finds the client's name; nil means no lookups (every
	// client is "[ip]", as without PTR).
	Resolver Resolver
	// Now is the clock for the dates in the greeting and the Received
	// header (default time.Now); timeouts always use the real clock.
	Now func() time.Time
	// Sleep waits for the tarpits (default: a timer that ctx cancels).
	// Tests replace it so that they do not wait.
	Sleep func(ctx context.Context, d time.Duration)
	// Log receives sendmail-format log lines; nil discards them.
	Log *maillog.Logger
	// Milters are the mail filters for this listener; nil for none.
	Milters Milters
	// Clients counts each client's sessions and connections for the
	// access file's ClientConn: and ClientRate: limits (shared by the
	// daemon's listeners); nil: no per-client limits.
	Clients *policy.ClientCounter
}

// Server serves SMTP sessions with one configuration.
type Server struct {
	cfg  Config
	help map[string][]string // HELP topics
}

// New checks cfg, fills in defaults and returns a server.
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("smtpd: Config.Backend is required")
	}
	if cfg.Hostname == "" {
		return nil, errors.New("smtpd: Config.Hostname is required")
	}
	if cfg.Version == "" {
		cfg.Version = "posthorn"
	}
	if cfg.DaemonName == "" {
		cfg.DaemonName = "MTA"
	}
	if cfg.Greeting == "" {
		cfg.Greeting = cfg.Hostname + " ESMTP " + cfg.Version + "; $b"
	}
	if !strings.Contains(cfg.Greeting, "ESMTP") {
		first, rest, _ := strings.Cut(cfg.Greeting, " ")
		cfg.Greeting = strings.TrimSuffix(first+" ESMTP "+rest, " ")
	}
	if cfg.MaxHopCount <= 0 {
		cfg.MaxHopCount = 25
	}
	t := &cfg.Timeouts
	setDefault(&t.Command, 5*time.Minute)
	setDefault(&t.DataBlock, 5*time.Minute)
	setDefault(&t.Data, time.Hour)
	setDefault(&t.Resolve, 10*time.Second)
	setDefault(&t.Write, 5*time.Minute)
	if cfg.Policy == nil {
		cfg.Policy = &policy.Policy{RelayHosts: policy.DefaultRelayHosts()}
	}
	if cfg.Policy.Router == nil {
		p := *cfg.Policy
		p.Router = route.New(route.Config{})
		cfg.Policy = &p
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepCtx
	}
	if cfg.TLS != nil {
		c := cfg.TLS.Clone()
		// Outlook and others fail to resume with tickets from another
		// process generation; sendmail has none either.
		c.SessionTicketsDisabled = true
		cfg.TLS = c
	}
	return &Server{cfg: cfg, help: parseHelp(helpText, cfg.Version)}, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// ServeConn runs one SMTP session on conn and closes it. The daemon
// calls it in its own goroutine for each accepted connection (after its
// policy.Limiter admitted it). It returns when the session ends: QUIT,
// a fatal protocol error, a timeout, the client going away, or ctx being
// cancelled (the connection is then closed under the session).
func (srv *Server) ServeConn(ctx context.Context, conn net.Conn) error {
	defer conn.Close()
	c := &Client{Daemon: srv.cfg.DaemonName}
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		c.Addr, c.Port = ap.Addr().Unmap(), int(ap.Port())
	}
	if ap, err := netip.ParseAddrPort(conn.LocalAddr().String()); err == nil {
		c.LocalAddr = ap.Addr().Unmap()
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	s := newSession(ctx, srv, c, conn, conn, conn)
	if srv.cfg.Clients != nil && c.Addr.IsValid() {
		open, rate, leave := srv.cfg.Clients.Arrive(c.Addr, time.Now())
		defer leave()
		s.clientOpen, s.clientRate = open, rate
	}
	srv.lookupClient(ctx, c)
	err := s.serve()
	lingeringClose(conn)
	return err
}

// lingeringClose ends the session gracefully: send FIN, then read what
// the client still sends for a moment. Closing a socket with unread
// input makes the kernel answer with RST, and a client that gets the RST
// before it read our last reply (a 421, say) loses that reply.
func lingeringClose(conn net.Conn) {
	cw, ok := conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.CopyN(io.Discard, conn, 64<<10)
}

// ServeStdio runs one session on r and w for "sendmail -bs": the client
// is user@localhost (user is the invoking user's name), trusted like a
// loopback client.
func (srv *Server) ServeStdio(ctx context.Context, r io.Reader, w io.Writer, user string) error {
	if user == "" {
		user = "root"
	}
	c := &Client{Daemon: srv.cfg.DaemonName, User: user}
	s := newSession(ctx, srv, c, r, w, nil)
	return s.serve()
}

// Refuse answers a connection the daemon will not serve (its
// policy.Limiter said no: "421 4.3.2 Too many open connections") and
// closes it.
func (srv *Server) Refuse(conn net.Conn, err error) {
	e := status.From(err)
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, _ = conn.Write(formatLine(e.Code, e.Enhanced, e.Text, false))
	conn.Close()
}

// lookupClient finds the PTR name of the client and confirms it forward,
// as sendmail does before the greeting.
func (srv *Server) lookupClient(ctx context.Context, c *Client) {
	if srv.cfg.Resolver == nil || !c.Addr.IsValid() {
		c.NoPTR = true
		return
	}
	ctx, cancel := context.WithTimeout(ctx, srv.cfg.Timeouts.Resolve)
	defer cancel()
	names, err := srv.cfg.Resolver.LookupAddr(ctx, c.Addr.String())
	if err != nil || len(names) == 0 {
		c.NoPTR = true
		return
	}
	c.Name = strings.TrimSuffix(names[0], ".")
	addrs, err := srv.cfg.Resolver.LookupHost(ctx, c.Name)
	if err != nil {
		c.Forged = true
		return
	}
	for _, a := range addrs {
		if ip, err := netip.ParseAddr(a); err == nil && ip.Unmap() == c.Addr {
			return
		}
	}
	c.Forged = true
}

// Privacy is the set of PrivacyOptions the server honours.
type Privacy uint

// PrivacyOptions flags.
const (
	NeedMailHelo Privacy = 1 << iota
	NeedExpnHelo
	NeedVrfyHelo
	NoExpn
	NoVrfy
	NoVerb
	NoEtrn
)

// ParsePrivacy reads a PrivacyOptions value ("needmailhelo,noexpn",
// "goaway"); options that concern other parts of sendmail
// (authwarnings, restrictqrun, ...) are accepted and ignored here.
func ParsePrivacy(s string) Privacy {
	var p Privacy
	for _, f := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		switch f {
		case "needmailhelo":
			p |= NeedMailHelo
		case "needexpnhelo":
			p |= NeedExpnHelo
		case "needvrfyhelo":
			p |= NeedVrfyHelo
		case "noexpn":
			p |= NoExpn
		case "novrfy":
			p |= NoVrfy
		case "noverb":
			p |= NoVerb
		case "noetrn":
			p |= NoEtrn
		case "goaway":
			p |= NeedMailHelo | NeedExpnHelo | NeedVrfyHelo | NoExpn | NoVrfy | NoVerb | NoEtrn
		}
	}
	return p
}

// LoadTLS builds the STARTTLS configuration from ServerCertFile and
// ServerKeyFile (PEM). Session tickets are off: clients such as Outlook
// fail when they present a ticket from an earlier server process.
func LoadTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("STARTTLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, SessionTicketsDisabled: true}, nil
}
