package main

import (
	"github.com/posthorn/posthorn/aliases"
	"github.com/posthorn/posthorn/internal/addrtest"
	"github.com/posthorn/posthorn/internal/policy"
	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue/runner"
)

// addressTest is -bt: sendmail's address test mode, answered with
// posthorn's own routing (package addrtest).
func (a *app) addressTest() int {
	rt, mt := newRouting(a.cfg, a.log)
	env := addrtest.Env{
		Router:   rt,
		Macros:   a.cfg.Macros,
		Classes:  a.cfg.Classes,
		Expand:   a.cfg.Expand,
		Resolver: newDNS(a.cfg, rt),
	}
	if mt != nil {
		env.Mailer = mt.Get
	}
	if f := aliasFile(a.cfg); f != "" {
		src := aliases.NewSource(aliases.SourceOptions{AliasFile: f, IsLocal: rt.IsLocal, Logger: a.log, RunUser: runUser()})
		defer src.Close()
		env.Aliases = src.Lookup
	}
	if acc, err := policy.LoadAccess(a.cfg.AccessFile); err == nil {
		env.Access = acc.Get
	}
	for _, m := range []struct{ name, path, note string }{
		{"prog", "[prog]", "|program, as the controlling user, smrsh rules for ~/.forward"},
		{"*file*", "[FILE]", "/file, appended as an mbox"},
		{"local", "[mbox]", "the mailbox in MailSpoolDirectory, dot-lock and fcntl"},
		{"smtp", "[IPC]", "SMTP client, HELO unless the greeting says ESMTP"},
		{"esmtp", "[IPC]", "SMTP client, EHLO"},
		{"smtp8", "[IPC]", "SMTP client, 8-bit data as is"},
		{"dsmtp", "[IPC]", "SMTP client, on-demand (ETRN) hosts"},
		{"relay", "[IPC]", "SMTP client for the smart host and mailertable relay: entries"},
	} {
		env.Mailers = append(env.Mailers, addrtest.Mailer{Name: m.name, Path: m.path, Flags: runner.MailerFlags(m.name), Note: m.note})
	}
	addrtest.Run(a.stdin, a.stdout, env)
	return sysexits.OK
}
