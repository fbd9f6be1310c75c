package test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDebInstallSendRemovePurge: install over another MTA, send, remove
// (queue kept), purge (configuration gone, mail still kept), reinstall.
func TestDebInstallSendRemovePurge(t *testing.T) {
	requireRootAndDpkg(t)
	deb := buildDeb(t)
	r := newDebRoot(t, true)
	// A root without base-files' /var/mail: postinst makes it.
	if err := os.Remove(r.path("var/mail")); err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(output(t, "dpkg-deb", "-f", deb, "Version"))
	defaultCF, err := os.ReadFile("../conf/sendmail.cf")
	if err != nil {
		t.Fatal(err)
	}
	// The previous MTA's configuration, which no package owns (Debian's
	// sendmail generates its sendmail.cf): it must stay, without a prompt
	// (dpkg's stdin is empty: a conffile question would fail the install).
	previousCF := string(defaultCF) + "# written by the previous MTA\n"
	r.write(t, "etc/mail/sendmail.cf", previousCF)

	// postfix conflicts with every mail-transport-agent: dpkg refuses, as
	// it must for a package that provides one, and apt would remove
	// postfix first; so does the test.
	out, err := r.tryDpkg(t, "--install", deb)
	if err == nil || !strings.Contains(out, "posthorn provides mail-transport-agent") {
		t.Fatalf("dpkg installed posthorn beside postfix: %v\n%s", err, out)
	}
	r.dpkg(t, "--remove", "postfix")
	// exim4-daemon-light declares no conflict: posthorn's Conflicts and
	// Replaces make dpkg remove it and hand over /usr/lib/sendmail.
	out = r.dpkg(t, "--install", deb)
	t.Logf("dpkg --install:\n%s", out)
	if st := r.packageStatus(t, "posthorn"); st != "ii" {
		t.Fatalf("posthorn status %q after install", st)
	}
	if st := r.packageStatus(t, "exim4-daemon-light"); st == "ii" {
		t.Errorf("exim4-daemon-light still installed (%q): Conflicts/Replaces did not take its place", st)
	}
	if r.exists("usr/sbin/exim4") {
		t.Error("exim4-daemon-light's files were not removed")
	}
	if l, err := os.Readlink(r.path("usr/lib/sendmail")); err != nil || l != "../sbin/sendmail" {
		t.Errorf("/usr/lib/sendmail -> %q, %v", l, err)
	}
	if got := r.read(t, "etc/mail/sendmail.cf"); got != previousCF {
		t.Errorf("the existing sendmail.cf was replaced:\n%s", got)
	}
	if !strings.Contains(out, "keeping the existing /etc/mail/sendmail.cf") {
		t.Errorf("install did not say it kept sendmail.cf")
	}
	if got := r.read(t, "etc/aliases"); !strings.Contains(got, "\npostmaster: root\n") {
		t.Errorf("/etc/aliases: %q", got)
	}
	if l, err := os.Readlink(r.path("etc/mail/aliases")); err != nil || l != "../aliases" {
		t.Errorf("/etc/mail/aliases -> %q, %v", l, err)
	}
	if !r.exists("etc/mail/aliases.db") {
		t.Error("postinst did not run newaliases")
	}
	fi, err := os.Stat(r.path("var/spool/mqueue"))
	if err != nil || fi.Mode().Perm() != 0o700 || !fi.IsDir() {
		t.Errorf("queue directory: %v %v", fi, err)
	}
	if fi, err := os.Stat(r.path("var/mail")); err != nil || fi.Mode()&(fs.ModePerm|fs.ModeSetgid) != 0o775|fs.ModeSetgid || fi.Sys().(*syscall.Stat_t).Gid != 8 {
		t.Errorf("mail spool made by postinst: %v %v, want root:mail 2775", fi, err)
	}
	if !strings.Contains(out, "systemd is not running here") {
		t.Errorf("install did not say how to start the daemon without systemd")
	}

	// The binary and its names, as the root's programs see them.
	if got := r.chroot(t, "", "/usr/sbin/sendmail", "-d0.1", "-bt"); !strings.Contains(got, "Version posthorn "+version+"\n") {
		t.Errorf("-d0.1 inside the root:\n%s", got)
	}
	// man sendmail finds posthorn's page.
	if page, err := r.run(t, "", "man", "-M", r.path("usr/share/man"), "-w", "sendmail"); err != nil || strings.TrimSpace(page) != r.path("usr/share/man/man8/sendmail.8.gz") {
		t.Errorf("man -w sendmail: %q %v", page, err)
	}

	// A message the way cron sends one, delivered in the background, and
	// one left in the queue.
	r.chroot(t, "To: root\nSubject: cron output\n\nfirst message\n", "/usr/sbin/sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root")
	waitFor(t, "the message in /var/mail/root", func() bool {
		b, _ := os.ReadFile(r.path("var/mail/root"))
		return strings.Contains(string(b), "first message\n") && len(queueFiles(t, r, "qf")) == 0
	})
	mbox := r.read(t, "var/mail/root")
	for _, want := range []string{"From root@", "Subject: cron output\n", "(posthorn " + version + ")"} {
		if !strings.Contains(mbox, want) {
			t.Errorf("mailbox lacks %q:\n%s", want, mbox)
		}
	}
	r.chroot(t, "Subject: kept\n\nsecond message\n", "/usr/lib/sendmail", "-odq", "root")
	if q := r.chroot(t, "", "/usr/bin/mailq"); !strings.Contains(q, "(1 request)") {
		t.Errorf("mailq inside the root:\n%s", q)
	}
	queued := queueFiles(t, r, "qf")
	if len(queued) != 1 {
		t.Fatalf("queue: %v", queued)
	}

	// remove: the programs go; configuration and queued mail stay.
	out = r.dpkg(t, "--remove", "posthorn")
	t.Logf("dpkg --remove:\n%s", out)
	if st := r.packageStatus(t, "posthorn"); st != "rc" {
		t.Errorf("posthorn status %q after remove", st)
	}
	for _, gone := range []string{"usr/sbin/sendmail", "usr/bin/mailq", "usr/lib/sendmail", "usr/share/man/man8/sendmail.8.gz"} {
		if r.exists(gone) {
			t.Errorf("%s left after remove", gone)
		}
	}
	for _, kept := range append([]string{"etc/mail/sendmail.cf", "etc/aliases", "etc/mail/aliases.db", "var/mail/root"}, rel(r, queued)...) {
		if !r.exists(kept) {
			t.Errorf("%s removed by remove", kept)
		}
	}
	if !strings.Contains(out, "1 queued message(s) kept in /var/spool/mqueue") {
		t.Errorf("remove did not say the queue is kept")
	}

	// purge: the configuration goes; the mail is never thrown away.
	out = r.dpkg(t, "--purge", "posthorn")
	t.Logf("dpkg --purge:\n%s", out)
	if st := r.packageStatus(t, "posthorn"); st != "" && st != "un" && st != "pn" {
		t.Errorf("posthorn status %q after purge", st)
	}
	for _, gone := range []string{"etc/mail/sendmail.cf", "etc/mail/aliases.db", "etc/mail/aliases", "var/spool/mqueue/.spare"} {
		if r.exists(gone) {
			t.Errorf("%s left after purge", gone)
		}
	}
	for _, kept := range append([]string{"etc/aliases", "var/mail/root"}, rel(r, queued)...) {
		if !r.exists(kept) {
			t.Errorf("%s removed by purge", kept)
		}
	}

	// Installed again: the default configuration, and the kept message
	// goes out with the first queue run.
	r.dpkg(t, "--install", deb)
	if got := r.read(t, "etc/mail/sendmail.cf"); got != string(defaultCF) {
		t.Errorf("reinstall did not install the default sendmail.cf:\n%s", got)
	}
	r.chroot(t, "", "/usr/sbin/sendmail", "-q")
	if mbox := r.read(t, "var/mail/root"); !strings.Contains(mbox, "second message\n") {
		t.Errorf("the message kept through remove and purge was not delivered:\n%s", mbox)
	}
	if q := queueFiles(t, r, "qf"); len(q) != 0 {
		t.Errorf("queue after the run: %v", q)
	}
}

func rel(r *debRoot, paths []string) []string {
	var out []string
	for _, p := range paths {
		if q, err := filepath.Rel(r.dir, p); err == nil {
			out = append(out, q)
		}
	}
	return out
}

// TestDebChrootless installs with the maintainer scripts running on this
// machine against the root (DPKG_ROOT), as bootstrap tools do: every path
// they touch is inside the root, the unit is enabled there (by
// deb-systemd-helper, when this machine has it) and nothing is started.
func TestDebChrootless(t *testing.T) {
	requireRootAndDpkg(t)
	// The scripts then run on this machine: only with a dpkg that passes
	// DPKG_ROOT to them (bookworm's 1.21 does), or they would change it.
	dpkgVersion := strings.TrimSpace(output(t, "dpkg-query", "-W", "-f=${Version}", "dpkg"))
	if exec.Command("dpkg", "--compare-versions", dpkgVersion, "ge", "1.21").Run() != nil {
		t.Skipf("dpkg %s may not set DPKG_ROOT for chrootless scripts", dpkgVersion)
	}
	deb := buildDeb(t)
	r := newDebRoot(t, false)
	hostWants := "/etc/systemd/system/multi-user.target.wants/posthorn.service"
	_, hostHadIt := os.Lstat(hostWants)

	r.dpkg(t, "--force-script-chrootless", "--install", deb)
	if st := r.packageStatus(t, "posthorn"); st != "ii" {
		t.Fatalf("posthorn status %q", st)
	}
	if got := r.read(t, "etc/mail/sendmail.cf"); !strings.HasPrefix(got, "# /etc/mail/sendmail.cf for posthorn") {
		t.Errorf("sendmail.cf: %q", got)
	}
	if !strings.Contains(r.read(t, "etc/aliases"), "postmaster: root") || !r.exists("etc/mail/aliases") || !r.exists("var/spool/mqueue") {
		t.Error("aliases or queue not made inside the root")
	}
	if _, err := os.Lstat(hostWants); err == nil && hostHadIt != nil {
		t.Fatalf("the scripts enabled the unit on this machine: %s", hostWants)
	}
	if _, err := os.Stat("/usr/bin/deb-systemd-helper"); err == nil {
		for _, l := range []string{"etc/systemd/system/multi-user.target.wants/posthorn.service", "etc/systemd/system/mail-transport-agent.service"} {
			if target, err := os.Readlink(r.path(l)); err != nil || target != "/lib/systemd/system/posthorn.service" {
				t.Errorf("%s -> %q, %v", l, target, err)
			}
		}
	}
	// An upgrade (here the same version again) keeps the admin's
	// changes to the conffile without asking.
	edited := r.read(t, "etc/mail/sendmail.cf") + "O MaxHopCount=30\n"
	r.write(t, "etc/mail/sendmail.cf", edited)
	r.dpkg(t, "--force-script-chrootless", "--install", deb)
	if got := r.read(t, "etc/mail/sendmail.cf"); got != edited {
		t.Errorf("upgrade lost the change to sendmail.cf:\n%s", got)
	}
	r.dpkg(t, "--force-script-chrootless", "--purge", "posthorn")
	for _, gone := range []string{"etc/systemd/system/multi-user.target.wants/posthorn.service", "etc/mail/sendmail.cf", "var/spool/mqueue"} {
		if r.exists(gone) {
			t.Errorf("%s left after purge", gone)
		}
	}
}
