package mta

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/milter"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/queue"
)

// newMilters builds the SMTP side's mail filters from the X lines and
// the Milter options; nil when InputMailFilters names none.
func newMilters(cfg *conf.Config, log *maillog.Logger, port conf.DaemonPort, res smtpd.Resolver) (smtpd.Milters, error) {
	macros := map[string]string{}
	for _, st := range []string{"connect", "helo", "envfrom", "envrcpt", "data", "eoh", "eom"} {
		if v, ok := cfg.Values["Milter.macros."+st]; ok {
			macros[st] = v
		}
	}
	mc, err := milter.Configure(milter.Options{
		XLines: cfg.MailFilters, InputMailFilters: inputFilters(cfg, port),
		LogLevel: cfg.Values["Milter.LogLevel"], DefaultLogLevel: cfg.LogLevel, Macros: macros,
	})
	if err != nil || mc == nil {
		return nil, err
	}
	return &milters{chain: milter.NewChain(mc, log), hostname: cfg.Macros["j"], daemon: port.Name, resolver: res}, nil
}

// inputFilters are a listener's filters: its DaemonPortOptions
// InputMailFilters= (sendmail's per-daemon list, for MAIL_FILTER lines),
// else the InputMailFilters option.
func inputFilters(cfg *conf.Config, port conf.DaemonPort) string {
	if port.InputMailFilters != "" {
		return port.InputMailFilters
	}
	return cfg.Values["InputMailFilters"]
}

// milters adapts milter.Chain to smtpd.Milters.
type milters struct {
	chain    *milter.Chain
	hostname string
	daemon   string
	resolver smtpd.Resolver // for {if_name}; nil: "[addr]"
	ifNames  sync.Map       // netip.Addr -> {if_name}
}

// ifName is sendmail's {if_name}: the name of the local address the
// client connected to (hostnamebyanyaddr: its PTR name, "[addr]" when it
// has none). A listener has few addresses, so each is looked up once.
func (m *milters) ifName(a netip.Addr) string {
	if v, ok := m.ifNames.Load(a); ok {
		return v.(string)
	}
	u := a.Unmap()
	name := "[" + u.String() + "]"
	if u.Is6() {
		name = "[IPv6:" + u.String() + "]"
	}
	if a.IsLoopback() {
		name = "localhost"
	} else if m.resolver != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if names, err := m.resolver.LookupAddr(ctx, a.String()); err == nil && len(names) > 0 {
			name = strings.TrimSuffix(names[0], ".")
		}
		cancel()
	}
	m.ifNames.Store(a, name)
	return name
}

// milterSession adapts milter.Session to smtpd.MilterSession.
type milterSession struct{ s *milter.Session }

func (m *milters) Open(c *smtpd.Client, id string) (smtpd.MilterSession, error) {
	macros := map[string]string{"j": m.hostname, "_": c.Relay(), "{daemon_name}": m.daemon, "v": "posthorn " + conf.Version}
	if c.Addr.IsValid() {
		macros["{client_addr}"] = c.Addr.String()
		macros["{client_port}"] = strconv.Itoa(c.Port)
		macros["{client_name}"] = c.Name
	}
	if c.LocalAddr.IsValid() {
		macros["{if_addr}"] = c.LocalAddr.String()
		macros["{if_name}"] = m.ifName(c.LocalAddr)
		macros["{daemon_addr}"] = c.LocalAddr.String()
	}
	s, v := m.chain.Open(id, macros)
	ms := &milterSession{s: s}
	if v.Action != milter.ActContinue {
		return ms, v.Reply
	}
	host := c.Name
	switch {
	case c.Local():
		host = "localhost"
	case host == "":
		host = "[" + c.Addr.String() + "]"
	}
	if v := s.Connect(milter.Conn{Host: host, Addr: c.Addr, Port: c.Port}); v.Action != milter.ActContinue {
		return ms, v.Reply
	}
	return ms, nil
}

func verdictErr(v milter.Verdict) error {
	switch v.Action {
	case milter.ActReject, milter.ActTempFail:
		return v.Reply
	case milter.ActDiscard:
		return smtpd.ErrDiscard
	}
	return nil
}

func (m *milterSession) Helo(c *smtpd.Client) error {
	if c.TLS {
		m.s.SetMacros(map[string]string{"{tls_version}": c.TLSVersion, "{cipher}": c.Cipher, "{cipher_bits}": cipherBits(c.Cipher)})
	}
	return verdictErr(m.s.Helo(c.Helo))
}

// cipherBits is {cipher_bits}: the symmetric key length of a TLS cipher
// suite named as crypto/tls does ("TLS_AES_128_GCM_SHA256": 128).
func cipherBits(suite string) string {
	switch {
	case strings.Contains(suite, "_256_"), strings.Contains(suite, "CHACHA20"):
		return "256"
	case strings.Contains(suite, "_128_"):
		return "128"
	case strings.Contains(suite, "3DES"):
		return "112"
	}
	return ""
}

func (m *milterSession) Mail(env *smtpd.Envelope, args []string) error {
	m.s.SetID(env.ID)
	mm := map[string]string{"i": env.ID, "{mail_addr}": env.From.Addr, "{mail_host}": senderDomain(env.From.Addr), "{mail_mailer}": "esmtp"}
	if !strings.Contains(env.From.Addr, "@") {
		mm["{mail_mailer}"] = "local"
	}
	if c := env.Client; c.AuthUser != "" {
		mm["{auth_authen}"], mm["{auth_type}"] = c.AuthUser, c.AuthMech
	}
	m.s.SetMacros(mm)
	return verdictErr(m.s.Mail(env.From.Addr, args))
}

func (m *milterSession) Rcpt(env *smtpd.Envelope, r *smtpd.Recipient, args []string) error {
	m.s.SetMacros(map[string]string{"{rcpt_mailer}": r.Route.Mailer, "{rcpt_host}": r.Route.Host, "{rcpt_addr}": r.Route.User})
	return verdictErr(m.s.Rcpt(r.Addr, args))
}

func (m *milterSession) Data(env *smtpd.Envelope) error { return verdictErr(m.s.Data()) }

func (m *milterSession) Unknown(c *smtpd.Client, line string) error {
	return verdictErr(m.s.Unknown(line))
}

func (m *milterSession) Abort() { m.s.Abort() }
func (m *milterSession) Close() { m.s.Close() }

// errDiscarded: the filters discarded the message; nothing is queued and
// the client hears 250.
var errDiscarded = errors.New("discarded by a mail filter")

// filterMessage runs end of message through the session's filters before
// the queue files are written: a reject or tempfail refuses the message,
// a discard drops it, and the modifications change aenv and m.
func filterMessage(ms smtpd.MilterSession, env *smtpd.Envelope, m *accept.Message, aenv *accept.Envelope) error {
	fs, ok := ms.(*milterSession)
	if !ok || fs == nil {
		return nil
	}
	msg := &milter.Message{Sender: aenv.Sender}
	if aenv.Received != "" {
		msg.Headers = append(msg.Headers, milter.Header{Name: "Received", Value: " " + aenv.Received, Own: true})
	}
	for _, h := range m.FilterHeaders() {
		msg.Headers = append(msg.Headers, milter.Header{Name: h.Name, Value: h.Value})
		if strings.EqualFold(h.Name, "Message-Id") {
			fs.s.SetMacros(map[string]string{"{msg_id}": strings.TrimSpace(h.Value)})
		}
	}
	for _, r := range aenv.Recipients {
		msg.Rcpts = append(msg.Rcpts, milter.Recipient{Addr: r.Addr, Args: rcptArgs(r)})
	}
	res := fs.s.EndOfMessage(msg, m.OpenBody)
	if err := verdictErr(res.Verdict); err != nil {
		m.Abort()
		if errors.Is(err, smtpd.ErrDiscard) {
			return errDiscarded
		}
		return err
	}
	if len(res.Mods) == 0 {
		return nil
	}
	var own []queue.Header
	for _, h := range msg.Headers {
		if h.Own {
			aenv.Received = strings.TrimSpace(h.Value)
			continue
		}
		own = append(own, queue.Header{HasCond: true, Name: h.Name, Value: h.Value})
	}
	m.SetHeaders(own)
	aenv.Sender = msg.Sender
	aenv.Recipients = aenv.Recipients[:0]
	for _, r := range msg.Rcpts {
		aenv.Recipients = append(aenv.Recipients, parseRcptArgs(r))
	}
	aenv.Quarantine = res.Quarantine
	if res.Body != nil {
		if err := m.ReplaceBody(res.Body); err != nil {
			m.Abort()
			return err
		}
	}
	return nil
}

func rcptArgs(r accept.Recipient) string {
	var a []string
	if r.Notify != "" {
		a = append(a, "NOTIFY="+r.Notify)
	}
	if r.ORcpt != "" {
		a = append(a, "ORCPT="+r.ORcpt)
	}
	return strings.Join(a, " ")
}

func parseRcptArgs(r milter.Recipient) accept.Recipient {
	out := accept.Recipient{Addr: r.Addr}
	for _, a := range strings.Fields(r.Args) {
		k, v, _ := strings.Cut(a, "=")
		switch strings.ToUpper(k) {
		case "NOTIFY":
			out.Notify = strings.ToUpper(v)
		case "ORCPT":
			out.ORcpt = v
		}
	}
	return out
}

func senderDomain(a string) string {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return a[i+1:]
	}
	return ""
}
