package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/internal/mta"
	"github.com/posthorn/posthorn/internal/policy"
	"github.com/posthorn/posthorn/internal/rfcdate"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/submit"
	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue"
)

// This file is local submission by users who may not write the queue
// (the MSP side: sendmail -t and -bs handed to the local MTA over SMTP)
// and the header rewriting that every path shares.

// canWriteQueue reports whether this process may queue directly (root,
// or a user given a writable queue); others hand their mail to the MTA.
func canWriteQueue(cfg *conf.Config) bool {
	return os.Geteuid() == 0 || unix.Access(cfg.QueueDirectory, unix.W_OK) == nil
}

// newHandoff is the hand-off to the local MTA.
func (a *app) newHandoff() *submit.Handoff {
	return &submit.Handoff{
		Addr: mtaAddress(a.cfg), Hostname: a.cfg.Macros["j"], Version: "posthorn " + conf.Version,
		Trusted:   func(u string) bool { return mta.Trusted(a.cfg, u) },
		HostNames: mta.HostNames(a.cfg), OldStyleHeaders: true, Date: rfcdate.Format, Log: a.log,
	}
}

// handOffSMTP is -bs for a user who may not write the queue: the SMTP
// dialogue on stdin/stdout as sendmail's MSP speaks it (no EXPN, VRFY,
// VERB or ETRN, as its EHLO shows; no greeting pause, so scripted
// input is answered as 06-sendmail-bs-pipelined-input-msp.txt shows), each
// message handed to the MTA. The exit code is 67 or another sysexits code
// when the MTA refused a recipient after the message was taken.
func (a *app) handOffSMTP() int {
	h := a.newHandoff()
	h.Version += "/Submit"
	u := invokingUser()
	backend := &submit.SMTPBackend{Handoff: h, User: u, IDs: queue.NewIDGen(os.Getpid(), time.Now), Errors: a.stderr}
	cfg := a.cfg
	// Not smtpConfig: the MSP reads no TLS key, auth file or access map
	// (a user could not read them), and a local client may relay.
	site := a.site(nil)
	defer site.Close()
	pol := &policy.Policy{Router: site.Router}
	srv, err := smtpd.New(smtpd.Config{
		Hostname:       cfg.Macros["j"],
		Greeting:       cfg.Expand(cfg.SmtpGreetingMessage, map[string]string{"b": "$b", "daemon_name": "MSP"}),
		Version:        h.Version,
		DaemonName:     "MSP",
		MaxMessageSize: cfg.MaxMessageSize,
		MaxRecipients:  cfg.MaxRecipientsPerMessage,
		MaxHopCount:    cfg.MaxHopCount,
		Privacy:        smtpd.ParsePrivacy(cfg.Values["PrivacyOptions"]) | smtpd.NoExpn | smtpd.NoVrfy | smtpd.NoVerb | smtpd.NoEtrn,
		Timeouts: smtpd.Timeouts{
			Command:   cfg.Timeout("command"),
			DataBlock: cfg.Timeout("datablock"),
			Data:      cfg.Timeout("datafinal"),
		},
		Policy:  pol,
		Backend: backend,
		Log:     a.log,
	})
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return sysexits.Software
	}
	if err := srv.ServeStdio(context.Background(), a.stdin, a.stdout, u.Name); err != nil && !errors.Is(err, io.EOF) {
		return sysexits.IOErr
	}
	return backend.Exit()
}
