package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/posthorn/posthorn/aliases"
	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/mta"
	"github.com/posthorn/posthorn/internal/submit"
	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue"
)

// submitMessage is -bm (the default) and -t: queue the message from stdin,
// then deliver it as DeliveryMode says.
func (a *app) submitMessage() int {
	if !canWriteQueue(a.cfg) {
		return a.handOff()
	}
	st, code := a.openStore(storeSubmit)
	if st == nil {
		return code
	}
	defer st.Close()
	site := a.site(st)
	defer site.Close()
	sub := site.Submitter()
	// -v and -odi deliver in this process, right away, as sendmail does;
	// -v also shows the transcript.
	interactive := a.cfg.DeliveryMode == conf.DeliverInteractive || (a.inv.Verbose && a.cfg.DeliveryMode == conf.DeliverBackground)
	// Background delivery hands the job, still locked, to a child.
	sub.KeepLocked = interactive || a.cfg.DeliveryMode == conf.DeliverBackground

	req := a.submitRequest()
	res, err := sub.Submit(req, a.stdin, a.stderr)
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return sysexits.TempFail
	}
	if res.ID == "" && len(res.Raw) > 0 && !a.inv.ReadHeaders {
		a.saveDeadLetter(res.Raw)
	}
	if res.ID != "" {
		msgid, _ := res.Job.Get("Message-Id")
		precedence, _ := res.Job.Get("Precedence")
		a.log.Infof(res.ID, "%s", maillog.Fields("from", strings.Trim(res.Job.Sender, "<>"), "size", strconv.FormatInt(res.Size, 10),
			"class", strconv.Itoa(queue.PrecedenceClass(precedence)), "nrcpts", strconv.Itoa(len(res.Job.Recipients)), "msgid", msgid, "relay", req.User.Name+"@localhost"))
		switch {
		case res.Locked != nil && interactive:
			a.deliverNow(site, res.Locked)
		case res.Locked != nil:
			a.deliverAfterSubmit(res.Locked)
		}
	}
	return res.Exit
}

// handOff is submission by a user who may not write the queue: the message
// goes to the local MTA over SMTP, as sendmail's MSP does.
func (a *app) handOff() int {
	h := a.newHandoff()
	req := a.submitRequest()
	start := time.Now()
	res, err := h.Submit(req, a.stdin, a.stderr)
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return sysexits.TempFail
	}
	if res.ID == "" && len(res.Raw) > 0 {
		a.saveDeadLetter(res.Raw)
	}
	if res.ID != "" {
		// sendmail's MSP line for the same hand-off.
		host, _, _ := net.SplitHostPort(h.Addr)
		delay := maillog.Delay(time.Since(start))
		a.log.Infof("", "%s", maillog.Fields("to", strings.Join(res.Accepted, ","),
			"ctladdr", fmt.Sprintf("%s (%d/%d)", req.User.Name, os.Getuid(), os.Getgid()),
			"delay", delay, "xdelay", delay, "mailer", "relay", "relay", "["+host+"] ["+host+"]",
			"dsn", "2.0.0", "stat", "Sent ("+res.ID+" Message accepted for delivery)"))
	}
	return res.Exit
}

// mtaAddress is where the local MTA listens: the first listener that does
// not require AUTH, with a wildcard address replaced by loopback.
func mtaAddress(cfg *conf.Config) string {
	for _, p := range cfg.Daemons {
		if p.HasModifier('a') {
			continue
		}
		host := p.Addr
		switch host {
		case "", "0.0.0.0", "INADDR_ANY":
			host = "127.0.0.1"
		case "::":
			host = "::1"
		}
		return net.JoinHostPort(host, strconv.Itoa(p.Port))
	}
	return "127.0.0.1:25"
}

// submitRequest is the command line as a submission.
func (a *app) submitRequest() *submit.Request {
	return &submit.Request{
		User:        invokingUser(),
		Sender:      a.inv.Sender,
		FullName:    a.inv.FullName,
		Recipients:  a.inv.Args,
		ReadHeaders: a.inv.ReadHeaders,
		IgnoreDots:  a.inv.IgnoreDots || a.cfg.IgnoreDots,
		Notify:      a.inv.DSNNotify,
		Ret:         a.inv.DSNRet,
		EnvID:       a.inv.EnvID,
		BodyType:    a.inv.BodyType,
	}
}

// deliverNow makes the first delivery attempt of a job just queued, in
// this process (-odi, -v), printing the transcript with -v.
func (a *app) deliverNow(site *mta.Site, l *queue.Locked) {
	run, err := a.delivery(site)
	if err != nil {
		l.Unlock() // the next queue run delivers it
		fmt.Fprintln(a.stderr, err)
		return
	}
	defer run.Close()
	var verbose io.Writer
	if a.inv.Verbose {
		verbose = a.stdout
	}
	run.DeliverNow(context.Background(), l, verbose)
	run.Runner.Wait()
}

// deliverAfterSubmit hands a job just queued, still locked, to a detached
// child for its first delivery attempt (DeliveryMode=background), so that
// sendmail returns at once. The child inherits the locked qf (see
// adoptEnv) and delivers that one job: no queue run can take it in
// between, and nothing scans the queue. If the child cannot be started,
// the job waits for the next queue run.
func (a *app) deliverAfterSubmit(l *queue.Locked) {
	dir, id := l.Dir(), l.ID()
	qf, err := l.Detach()
	if err != nil {
		return
	}
	defer qf.Close() // the child has its own copy, which keeps the lock
	self, err := os.Executable()
	if err != nil {
		return
	}
	args := []string{"-qI" + id}
	if a.inv.ConfigFile != "" {
		args = append([]string{"-C", a.inv.ConfigFile}, args...)
	}
	for _, o := range a.inv.Options {
		if o.Short {
			args = append(args, "-o"+o.Name+o.Value)
		} else {
			args = append(args, "-O", o.Name+"="+o.Value)
		}
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), adoptEnv+"="+dir)
	cmd.ExtraFiles = []*os.File{qf}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if cmd.Start() == nil {
		cmd.Process.Release()
	}
}

// saveDeadLetter keeps a message nobody could take, as sendmail does, in
// ~/dead.letter.
func (a *app) saveDeadLetter(raw []byte) {
	home, err := os.UserHomeDir()
	if err != nil {
		return
	}
	p := filepath.Join(home, "dead.letter")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Write(raw); err == nil {
		fmt.Fprintf(a.stderr, "%s... Saved message in %s\n", p, p)
	}
}

// invokingUser is the real user running sendmail, with the full name from
// the GECOS field.
func invokingUser() submit.User {
	u := submit.User{UID: os.Getuid(), Name: strconv.Itoa(os.Getuid())}
	if pw, err := user.LookupId(strconv.Itoa(u.UID)); err == nil {
		u.Name = pw.Username
		u.FullName = aliases.FullName(pw.Name, pw.Username)
	}
	return u
}
