package main

import (
	"github.com/posthorn/posthorn/internal/addrtest"
	"github.com/posthorn/posthorn/internal/policy"
	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue/runner"
)

// addressTest is -bt: sendmail's address test mode, answered with
// posthorn's own routing (package addrtest).
func (a *app) addressTest() int {
	site := a.site(nil)
	defer site.Close()
	env := addrtest.Env{
		Router:   site.Router,
		Macros:   a.cfg.Macros,
		Classes:  a.cfg.Classes,
		Expand:   a.cfg.Expand,
		Resolver: site.DNS(),
		TLS:      site.TLSPolicy(),
	}
	env.TLSSettings = site.TLSSettings()
	if a.cfg.TLS.Reports {
		env.TLSReports = site.TLSReportStore().List
	}
	if site.MailerTable != nil {
		env.Mailer = site.MailerTable.Get
	}
	if site.Aliases != nil {
		env.Aliases = site.Aliases.Lookup
	}
	if acc, err := policy.LoadAccess(a.cfg.AccessFile); err == nil {
		env.Access = acc.Get
	}
	for _, m := range []struct{ name, path, note string }{
		{"prog", "[prog]", "|program, as the controlling user, smrsh rules for ~/.forward"},
		{"*file*", "[FILE]", "/file, appended as an mbox"},
		// Numbered as sendmail's: local is mailer 3, esmtp 5.
		{"*include*", "/dev/null", ":include: lists, expanded when the message is accepted"},
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
