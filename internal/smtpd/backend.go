package smtpd

import (
	"context"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/status"
)

// Client describes the other end of a session, as far as the server knows
// it. Backend and policy decisions get it with every call.
type Client struct {
	Addr     netip.Addr // zero for -bs sessions
	Port     int
	Name     string // PTR name when one was found ("" otherwise)
	Forged   bool   // the PTR name does not resolve back to Addr
	NoPTR    bool   // the reverse lookup failed (sendmail: "IP name lookup failed")
	User     string // -bs: the invoking user ("root"); empty for network clients
	Helo     string // the HELO/EHLO argument, once given
	ESMTP    bool   // EHLO rather than HELO
	TLS      bool   // STARTTLS completed
	AuthUser string // the authenticated user name (AUTH), "" when none
	AuthMech string // the AUTH mechanism used ("PLAIN", "LOGIN")
	// TLSVersion and Cipher describe STARTTLS ("TLSv1.3",
	// "TLS_AES_128_GCM_SHA256"): the filters' {tls_version} and {cipher}.
	TLSVersion, Cipher string
	Daemon             string // the listener's name, e.g. "MTA-v4" or "MSA"
	// LocalAddr is the address the client connected to (the filters'
	// {if_addr}); zero for -bs.
	LocalAddr netip.Addr
}

// Local reports whether this is a local (-bs) session.
func (c *Client) Local() bool { return c.User != "" }

// Relay returns sendmail's $_ text for the client: "name [ip]", "[ip]",
// "name [ip] (may be forged)" or, for -bs, "user@localhost". It is the
// relay= value of log lines and the client part of the EHLO greeting.
func (c *Client) Relay() string {
	if c.Local() {
		return c.User + "@localhost"
	}
	ip := "[" + c.Addr.String() + "]"
	if c.Addr.Is6() {
		ip = "[IPv6:" + c.Addr.String() + "]"
	}
	switch {
	case c.Name == "":
		return ip
	case c.Forged:
		return c.Name + " " + ip + " (may be forged)"
	default:
		return c.Name + " " + ip
	}
}

// Path is one address of the envelope as the client wrote it.
type Path struct {
	Raw  string // as written after "FROM:"/"TO:", angle brackets included when given
	Addr string // without the outer angle brackets: "alice@localhost", "" for <>
	// Address is the parsed form the server judged (route, relay check):
	// the one parse of the path.
	Address addr.Address
}

// Recipient is one accepted RCPT.
type Recipient struct {
	Path
	Route     route.Triple // where it goes (route.Router.Resolve)
	Canonical string       // Route.Key(): duplicates share it
	Notify    string       // NOTIFY= as given, upper-cased ("" when absent)
	ORcpt     string       // ORCPT= as given ("rfc822;alice@example.org")
	params    []string     // the ESMTP parameters as written, for the filters
}

// Envelope is one mail transaction.
type Envelope struct {
	ID        string // queue ID assigned at MAIL (Backend.NewID)
	From      Path
	Size      int64  // SIZE= (0 when not given)
	Body      string // "7BIT", "8BITMIME" or "" when not given
	Ret       string // "FULL", "HDRS" or ""
	EnvID     string // ENVID= (xtext, as given)
	Auth      string // AUTH= of MAIL (xtext decoded), kept only for authenticated clients
	DeliverBy string // BY= as given
	Rcpts     []Recipient
	Client    *Client
	MailTime  time.Time // when MAIL was given
	// Received is the value of the Received header this server adds
	// (without "Received:"), folded with "\n\t" as a qf H line keeps it:
	// "from c.example (c.example [192.0.2.1])\n\tby ... id ID\n\tfor
	// <alice@x>; <date>". Set before Enqueue.
	Received string
	// Transcript is non-nil after VERB: each line written to it is sent to
	// the client at once as a "050 <line>" reply (the delivery transcript),
	// and the backend should deliver before Enqueue returns. It must not
	// be used after Enqueue returned.
	Transcript io.Writer
	// Accepted, when set, is called by the backend once the message is
	// durable in the queue and before any delivery it makes, with the
	// queue ID and the Message-Id the queued message carries (the
	// client's or the one added): the server logs "from=" there, so that
	// it comes before the "to=" lines of a VERB or interactive delivery,
	// as in sendmail. It must not be used after Enqueue returned.
	Accepted      func(id, msgid string)
	senderChecked bool          // the sender's domain was looked up (senderDomain)
	senderErr     *status.Error // what that gave

	// Milter is the session's mail filters (nil without): the backend
	// runs end of message through them before it queues the message.
	Milter MilterSession
}

// Backend connects the SMTP dialogue to the rest of the MTA: address
// checks (aliases, local users), the queue and the queue runner. The
// server itself logs the transaction's "from=" line, the check_rcpt
// rejections and the VRFY/EXPN/ETRN notices, as sendmail's daemon does;
// the backend logs what it alone knows. The server calls it from one
// goroutine per session; implementations must be safe for concurrent
// sessions. Errors should be *status.Error carrying the reply; any other
// error is answered with 451 4.3.0.
type Backend interface {
	// NewID returns a fresh queue ID. It is called for each session (for
	// log lines before MAIL) and for each MAIL command.
	NewID() string

	// CheckSender vets MAIL FROM after syntax and size checks. The null
	// sender has Addr "".
	CheckSender(ctx context.Context, c *Client, from Path) error

	// CheckRecipient vets RCPT TO after the relay check; t is where the
	// router sends rcpt (the triple the relay check judged). An unknown
	// local user is a *status.Error such as 550 5.1.1
	// "<nosuchuser@localhost>... User unknown". Two RCPTs whose triples
	// have the same Key are one recipient: the second is answered like
	// the first and delivered once.
	CheckRecipient(ctx context.Context, c *Client, env *Envelope, rcpt Path, t route.Triple) error

	// Verify answers VRFY (expand=false) and EXPN (expand=true) for arg as
	// the client typed it. Each Expansion becomes one reply line.
	Verify(ctx context.Context, c *Client, arg string, expand bool) ([]Expansion, error)

	// Enqueue stores the message. r yields the client's text with LF
	// line ends, header and body (dot-unstuffing done); the Received
	// header to put before it is env.Received. Enqueue must read r up to
	// io.EOF and return the queue ID only once the message is durable
	// (fsync). When r returns any other error the client broke the
	// protocol or the connection: Enqueue must store nothing and return
	// an error.
	Enqueue(ctx context.Context, env *Envelope, r io.Reader) (id string, err error)

	// ETRN starts a queue run for arg ("host", "@domain").
	ETRN(ctx context.Context, c *Client, arg string) error
}

// Expansion is one line of a VRFY or EXPN answer.
type Expansion struct {
	Code     int    // 250, or 252 for a remote address VRFY cannot check
	FullName string // "Alice Example" or ""
	Addr     string // "alice@refhost.example.org", "|/bin/prog", "/var/tmp/f"
}

// SpaceChecker is optionally implemented by a Backend. The server asks it
// at every MAIL with the SIZE= value (0 when none was given), after the
// MaxMessageSize check; false is answered "452 4.4.5 Insufficient disk
// space; try again later", as sendmail's enoughdiskspace (SIZE= plus
// MinFreeBlocks against the queue's file system).
type SpaceChecker interface {
	EnoughSpace(size int64) bool
}

// Resolver looks up the client's PTR name and confirms it forward.
// *net.Resolver implements it.
type Resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Authenticator checks AUTH PLAIN/LOGIN credentials
// (policy.AuthFile implements it).
type Authenticator interface {
	Authenticate(user, password string) bool
}

var _ Resolver = (*net.Resolver)(nil)
