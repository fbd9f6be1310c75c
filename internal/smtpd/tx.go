package smtpd

import (
	"errors"
	"time"

	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/policy"
	"github.com/posthorn/posthorn/internal/status"
)

// mail handles MAIL FROM.
func (s *session) mail(arg string) {
	switch {
	case s.cfg.Privacy&NeedMailHelo != 0 && s.c.Helo == "":
		s.reply(503, "5.0.0", "Polite people say HELO first")
		return
	case s.env != nil:
		s.reply(503, "5.5.0", "Sender already specified")
		return
	case s.cfg.RequireAuth && s.c.AuthUser == "":
		s.reply(530, "5.7.0", "Authentication required")
		return
	}
	s.issued = true
	path, params, err := parseCommandPath(arg, "FROM")
	if err != nil {
		s.log().Infof(s.id, "%s", status.From(err).Text)
		s.replyErr(err)
		return
	}
	env := &Envelope{ID: s.cfg.Backend.NewID(), From: path, Client: s.c, MailTime: s.cfg.Now(), Milter: s.milter}
	if err := s.checkMail(env, params); err != nil {
		// sendmail has taken the sender before it looks at the
		// parameters, so the transaction is logged.
		s.logFrom(env, env.Size, "", 0)
		s.replyErr(err)
		return
	}
	if s.milterStage(func(m MilterSession) error { return m.Mail(env, paramArgs(params)) }) {
		return
	}
	s.env = env
	s.seen = map[string]int{}
	s.badRcpts, s.rcptsFull = 0, false // sendmail resets n_badrcpts at MAIL
	s.reply(250, "2.1.0", "%s... Sender ok", path.Raw)
}

func (s *session) checkMail(env *Envelope, params []param) error {
	if err := mailParams(env, params); err != nil {
		return err
	}
	if max := s.cfg.MaxMessageSize; max > 0 && env.Size > max {
		return status.New(552, "5.2.3", "Message size exceeds fixed maximum message size (%d)", max)
	}
	if sc, ok := s.cfg.Backend.(SpaceChecker); ok && !sc.EnoughSpace(env.Size) {
		return status.New(452, "4.4.5", "Insufficient disk space; try again later")
	}
	if s.cfg.RequireAuth && !s.cfg.Policy.SenderBelongs(s.c.AuthUser, env.From.Addr) {
		return status.New(553, "5.7.1", "%s... Sender address does not belong to user %s", env.From.Raw, s.c.AuthUser)
	}
	d, err := s.cfg.Policy.CheckSender(env.From.Addr)
	if err != nil {
		s.log().Noticef(env.ID, "ruleset=check_mail, arg1=%s, relay=%s, reject=%s", env.From.Raw, s.c.Relay(), err.Error())
		return err
	}
	if d.Action == policy.Discard {
		s.txDiscard = true
	}
	return s.cfg.Backend.CheckSender(s.ctx, s.c, env.From)
}

// rcpt handles RCPT TO.
func (s *session) rcpt(arg string) {
	env := s.env
	if env == nil {
		s.reply(503, "5.0.0", "Need MAIL before RCPT")
		return
	}
	if t := s.cfg.BadRcptThrottle; t > 0 && s.badRcpts >= t {
		if s.badRcpts == t {
			s.badRcpts++ // log once
			s.log().Infof(env.ID, "%s: Possible SMTP RCPT flood, throttling.", s.c.Relay())
		}
		s.sleep(time.Second)
	}
	r, err := s.checkRcpt(env, arg)
	if err != nil {
		s.badRcpts++
		s.replyErr(err)
		return
	}
	if i, dup := s.seen[r.Canonical]; dup {
		s.reply(250, "2.1.5", "<%s>... Recipient ok", env.Rcpts[i].Addr)
		return
	}
	if s.milterStage(func(m MilterSession) error { return m.Rcpt(env, &r, r.params) }) {
		return
	}
	s.seen[r.Canonical] = len(env.Rcpts)
	env.Rcpts = append(env.Rcpts, r)
	s.reply(250, "2.1.5", "<%s>... Recipient ok", r.Addr)
}

func (s *session) checkRcpt(env *Envelope, arg string) (Recipient, error) {
	// sendmail counts before it parses: flooding costs no parsing
	if max := s.cfg.MaxRecipients; max > 0 && len(env.Rcpts) >= max {
		if !s.rcptsFull {
			s.rcptsFull = true // log once per transaction, not per RCPT of a flood
			s.log().Noticef(env.ID, "%s: too many recipients (MaxRecipientsPerMessage=%d)", s.c.Relay(), max)
		}
		return Recipient{}, status.New(452, "4.5.3", "Too many recipients")
	}
	path, params, err := parseCommandPath(arg, "TO")
	switch {
	case errors.Is(err, addr.ErrNoUser):
		// sendmail's check_rcpt refuses the null path
		s.log().Noticef(env.ID, "ruleset=check_rcpt, arg1=%s, relay=%s, reject=%s", path.Raw, s.c.Relay(), err.Error())
		return Recipient{}, err
	case err != nil:
		s.log().Infof(env.ID, "%s", status.From(err).Text)
		return Recipient{}, err
	}
	r := Recipient{Path: path, params: paramArgs(params)}
	if err := rcptParams(&r, params); err != nil {
		s.log().Infof(env.ID, "%s", status.From(err).Text)
		return r, err
	}
	// One parsed form, one route: the relay check judges where delivery
	// will take the mail, and the backend checks the same triple.
	r.Route = s.cfg.Policy.Router.Resolve(path.Address)
	d, perr := s.cfg.Policy.CheckRecipient(s.policyClient(), path.Addr, r.Route)
	if perr != nil {
		s.log().Noticef(env.ID, "ruleset=check_rcpt, arg1=<%s>, relay=%s, reject=%s", path.Addr, s.c.Relay(), perr.Error())
		return r, perr
	}
	if d.Action == policy.Discard {
		s.txDiscard = true
	}
	if serr := s.senderDomain(env); serr != nil {
		e := status.New(serr.Code, serr.Enhanced, "<%s>... %s", path.Addr, serr.Text)
		s.log().Noticef(env.ID, "ruleset=check_rcpt, arg1=<%s>, relay=%s, reject=%s", path.Addr, s.c.Relay(), e.Error())
		return r, e
	}
	if err := s.cfg.Backend.CheckRecipient(s.ctx, s.c, env, path, r.Route); err != nil {
		s.log().Infof(env.ID, "%s", status.From(err).Text)
		return r, err
	}
	r.Canonical = r.Route.Key()
	return r, nil
}

// data handles DATA: 354, the message, then the backend's answer.
func (s *session) data(string) {
	env := s.env
	switch {
	case env == nil:
		s.reply(503, "5.0.0", "Need MAIL command")
		return
	case len(env.Rcpts) == 0:
		s.reply(503, "5.0.0", "Need RCPT (recipient)")
		return
	}
	if s.br.Buffered() > 0 {
		s.log().Infof(env.ID, "%s: SMTP protocol error: input before DATA reply", s.c.Relay())
		s.reply(554, "5.5.0", "SMTP protocol error")
		s.closing = true
		return
	}
	if s.milterStage(func(m MilterSession) error { return m.Data(env) }) {
		return
	}
	s.reply(354, "", "End data with <CR><LF>.<CR><LF>")
	if err := s.flush(); err != nil {
		return
	}
	s.receive(env)
}

// senderDomain is sendmail's check that the MAIL FROM domain exists,
// answered (as with FEATURE(delay_checks)) at each RCPT that passed the
// relay check: asked once per transaction, not for relay clients nor the
// null sender.
func (s *session) senderDomain(env *Envelope) *status.Error {
	if s.cfg.SenderDomain == nil || env.From.Addr == "" {
		return nil
	}
	if !env.senderChecked {
		env.senderChecked = true
		if !s.cfg.Policy.RelayClient(s.policyClient()) {
			if err := s.cfg.SenderDomain(s.ctx, env.From.Addr); err != nil {
				env.senderErr = status.From(err)
			}
		}
	}
	return env.senderErr
}
