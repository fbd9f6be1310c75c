package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// The Debian package (make deb), black-box: its control fields and files
// as dpkg-deb shows them, then, as root, its life in a throwaway root that
// the test makes (a chroot holding a shell, the few commands the
// maintainer scripts use and the C library): dpkg --root installs it over
// a (fake) postfix, the maintainer scripts run chrooted as on a real host
// (no systemd there, so no service is started), /usr/sbin/sendmail inside
// the root takes a message the way cron sends one and delivers it, a
// second one stays queued; remove keeps the queue and the configuration,
// purge removes the configuration and still keeps the mail; a reinstall
// delivers it. A second root checks the scripts' DPKG_ROOT side (dpkg
// --force-script-chrootless): the unit is enabled inside that root only.
// Nothing is installed into the machine's own root.

var (
	debOnce sync.Once
	debPath string
	debErr  error
)

// buildDeb runs make deb once, with every output in a temporary directory.
func buildDeb(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"make", "dpkg-deb", "dpkg-shlibdeps", "scdoc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (.ci/run installs it)", tool)
		}
	}
	debOnce.Do(func() {
		dir, err := os.MkdirTemp("", "posthorn-deb-")
		if err != nil {
			debErr = err
			return
		}
		debPath = filepath.Join(dir, "posthorn.deb")
		out, err := exec.Command("make", "-C", "..", "-s", "deb", "BUILDDIR="+filepath.Join(dir, "build"), "DEB="+debPath).CombinedOutput()
		if err != nil {
			debErr = fmt.Errorf("make deb: %v\n%s", err, out)
		}
	})
	if debErr != nil {
		t.Fatal(debErr)
	}
	return debPath
}

func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestDebControlAndContents(t *testing.T) {
	deb := buildDeb(t)
	fields := output(t, "dpkg-deb", "-f", deb)
	for _, want := range []string{
		"Package: posthorn\n",
		"Provides: mail-transport-agent\n",
		"Section: mail\n",
		"Priority: optional\n",
		"Depends: libc6 (>= ",
	} {
		if !strings.Contains(fields, want) {
			t.Errorf("control lacks %q:\n%s", want, fields)
		}
	}
	for _, field := range []string{"Conflicts", "Replaces"} {
		v := output(t, "dpkg-deb", "-f", deb, field)
		for _, mta := range []string{"mail-transport-agent", "exim4-daemon-light", "exim4-daemon-heavy", "postfix", "sendmail-bin", "opensmtpd"} {
			if !regexp.MustCompile(`(^|[ ,])` + regexp.QuoteMeta(mta) + `(,|$|\s)`).MatchString(v) {
				t.Errorf("%s: %q lacks %s", field, v, mta)
			}
		}
	}
	// The version is the build's, as the binary reports it.
	version := strings.TrimSpace(output(t, "dpkg-deb", "-f", deb, "Version"))
	want := strings.TrimSpace(output(t, "sh", "../dist/version.sh"))
	if version != want {
		t.Errorf("package version %q, dist/version.sh says %q", version, want)
	}

	listing := output(t, "dpkg-deb", "-c", deb)
	for _, want := range []string{
		"-rwxr-xr-x root/root .* ./usr/sbin/sendmail\n",
		"-rw-r--r-- root/root .* ./etc/mail/sendmail.cf\n",
		"-rw-r--r-- root/root .* ./lib/systemd/system/posthorn.service\n",
		"./usr/bin/mailq -> ../sbin/sendmail\n",
		"./usr/bin/newaliases -> ../sbin/sendmail\n",
		"./usr/bin/hoststat -> ../sbin/sendmail\n",
		"./usr/bin/purgestat -> ../sbin/sendmail\n",
		"./usr/lib/sendmail -> ../sbin/sendmail\n",
		"./usr/libexec/posthorn/mail.local -> ../../sbin/sendmail\n",
		"./usr/share/man/man8/sendmail.8.gz\n",
		"./usr/share/man/man1/mailq.1.gz\n",
		"./usr/share/man/man1/newaliases.1.gz\n",
		"./usr/share/man/man5/aliases.5.gz\n",
		"./usr/share/man/man5/sendmail.cf.5.gz\n",
		"./usr/share/man/man8/purgestat.8.gz -> hoststat.8.gz\n",
		"./usr/share/doc/posthorn/copyright\n",
	} {
		if !regexp.MustCompile(want).MatchString(listing) {
			t.Errorf("package lacks %q", want)
		}
	}
	// /var/mail is base-files'; the queue is made by postinst, so that no
	// removal takes it with the mail in it.
	for _, not := range []string{"./var/mail", "./var/spool/mqueue"} {
		if strings.Contains(listing, not) {
			t.Errorf("package ships %s", not)
		}
	}
	dir := t.TempDir()
	output(t, "dpkg-deb", "-e", deb, dir)
	if b, _ := os.ReadFile(filepath.Join(dir, "conffiles")); string(b) != "/etc/mail/sendmail.cf\n" {
		t.Errorf("conffiles: %q", b)
	}
}

// TestDebLintian is the acceptance check: no lintian errors (warnings are
// listed in the README's Debian package section).
func TestDebLintian(t *testing.T) {
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Skip("lintian not installed")
	}
	deb := buildDeb(t)
	out, err := exec.Command("lintian", "--fail-on", "error", deb).CombinedOutput()
	if err != nil {
		t.Errorf("lintian: %v\n%s", err, out)
	}
	t.Logf("lintian:\n%s", out)
}

// debRoot is a throwaway root that dpkg --root installs into.
type debRoot struct{ dir string }

// newDebRoot lays out a merged-/usr root with the programs the maintainer
// scripts run, passwd and group files with root and mail, and /var/mail as
// base-files makes it; dpkg's database holds libc6 (copied from this
// machine's) and, with fakeMTAs, two MTAs that own /usr/sbin/sendmail and
// /usr/lib/sendmail.
func newDebRoot(t *testing.T, fakeMTAs bool) *debRoot {
	t.Helper()
	r := &debRoot{dir: t.TempDir()}
	for _, d := range []string{"usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "etc", "tmp", "dev", "proc", "root", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/mail"} {
		if err := os.MkdirAll(r.path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		if err := os.Symlink("usr/"+l, r.path(l)); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(r.path("tmp"), 0o1777)
	os.Chown(r.path("var/mail"), 0, 8)
	os.Chmod(r.path("var/mail"), 0o2775)
	for _, prog := range []string{"sh", "mv", "chmod", "chgrp", "ln", "mkdir", "rm", "rmdir", "readlink", "cat"} {
		r.copyProgram(t, prog)
	}
	r.write(t, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nmail:x:8:8:mail:/var/mail:/usr/sbin/nologin\n")
	r.write(t, "etc/group", "root:x:0:\nmail:x:8:\n")
	r.write(t, "etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n")
	r.write(t, "etc/hosts", "127.0.0.1 localhost\n")
	status := output(t, "dpkg-query", "--status", "libc6") + "\n"
	r.write(t, "var/lib/dpkg/info/libc6:"+strings.TrimSpace(output(t, "dpkg", "--print-architecture"))+".list", "")
	if fakeMTAs {
		// postfix as Debian has it (Conflicts: mail-transport-agent), and an
		// exim4-daemon-light without Conflicts, which posthorn's own
		// Conflicts and Replaces must take the place of.
		for _, p := range []struct{ name, conflicts, files string }{
			{"postfix", "Conflicts: mail-transport-agent\n", "/usr/sbin/sendmail\n/usr/sbin/postfix\n"},
			{"exim4-daemon-light", "", "/usr/sbin/exim4\n/usr/lib/sendmail\n"},
		} {
			status += "Package: " + p.name + "\nStatus: install ok installed\nPriority: optional\nSection: mail\n" +
				"Maintainer: nobody <nobody@example.org>\nArchitecture: all\nVersion: 1.0-1\n" +
				"Provides: mail-transport-agent\n" + p.conflicts +
				"Description: stands in for the MTA that posthorn replaces\n\n"
			r.write(t, "var/lib/dpkg/info/"+p.name+".list", "/usr\n/usr/sbin\n/usr/lib\n"+p.files)
			for _, f := range strings.Fields(p.files) {
				r.write(t, f[1:], "#!/bin/sh\necho this is "+p.name+"\n")
			}
		}
	}
	r.write(t, "var/lib/dpkg/status", status)
	return r
}

func (r *debRoot) path(p string) string { return filepath.Join(r.dir, p) }

func (r *debRoot) write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(r.path(p)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.path(p), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (r *debRoot) read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(r.path(p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (r *debRoot) exists(p string) bool {
	_, err := os.Lstat(r.path(p))
	return err == nil
}

// copyProgram copies a program of this machine and the libraries ldd
// names for it into the root, at the same paths.
func (r *debRoot) copyProgram(t *testing.T, name string) {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s: %v", name, err)
	}
	files := []string{p}
	for _, f := range strings.Fields(output(t, "ldd", p)) {
		if strings.HasPrefix(f, "/") {
			files = append(files, f)
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := r.path(f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// run runs a command in a private mount namespace with the root's /proc
// mounted (posthorn starts its delivery processes through /proc/self/exe,
// as on a real host); the namespace takes the mount away when it ends.
func (r *debRoot) run(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	script := `mount -t proc proc "$0/proc" && exec "$@"`
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", script, r.dir}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// dpkg runs dpkg on the root, maintainer scripts chrooted into it.
func (r *debRoot) dpkg(t *testing.T, args ...string) string {
	t.Helper()
	out, err := r.tryDpkg(t, args...)
	if err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (r *debRoot) tryDpkg(t *testing.T, args ...string) (string, error) {
	t.Helper()
	// --root alone still logs to the machine's /var/log/dpkg.log.
	if err := os.MkdirAll(r.path("var/log"), 0o755); err != nil {
		t.Fatal(err)
	}
	return r.run(t, "", append([]string{"dpkg", "--root=" + r.dir, "--log=" + r.path("var/log/dpkg.log"), "--force-unsafe-io"}, args...)...)
}

// chroot runs a program of the root inside it.
func (r *debRoot) chroot(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := r.run(t, stdin, append([]string{"chroot", r.dir}, args...)...)
	if err != nil {
		t.Fatalf("in the root: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (r *debRoot) packageStatus(t *testing.T, pkg string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--admindir="+r.path("var/lib/dpkg"), "-W", "-f=${db:Status-Abbrev}", pkg).Output()
	if err != nil {
		return "" // unknown to dpkg: never installed, or purged
	}
	return strings.TrimSpace(string(out))
}

func queueFiles(t *testing.T, r *debRoot, prefix string) []string {
	t.Helper()
	m, _ := filepath.Glob(r.path("var/spool/mqueue/" + prefix + "*"))
	return m
}

func requireRootAndDpkg(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("installing into a throwaway root needs root (chroot, dpkg --root)")
	}
	for _, tool := range []string{"dpkg", "dpkg-query", "unshare", "chroot", "ldd", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

// The build's version is the VERSION file's release, with the commit
// after it when the tree is not at the release tag, in a form dpkg sorts.
func TestVersionScript(t *testing.T) {
	base, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	v := strings.TrimSpace(output(t, "sh", "../dist/version.sh"))
	re := `^` + regexp.QuoteMeta(strings.TrimSpace(string(base))) + `(\+git[0-9]+\.g[0-9a-f]{7,})?(\.dirty)?$`
	if !regexp.MustCompile(re).MatchString(v) {
		t.Errorf("dist/version.sh printed %q, want %s", v, re)
	}
}
