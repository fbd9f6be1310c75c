// Package slapdtest runs a private OpenLDAP slapd for tests: its own
// slapd.conf, database and port on 127.0.0.1, loaded with sendmail's
// schema (Debian's copy when installed, else package ldapmap's) and the
// LDIF a test gives, stopped and started again at will, never touching
// the machine's /etc/ldap configuration or databases.
package slapdtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Suffix and the root account of the test directory.
const (
	Suffix = "dc=example,dc=test"
	RootDN = "cn=admin," + Suffix
	RootPW = "secret"
)

// Server is one slapd.
type Server struct {
	t    testing.TB
	dir  string
	URI  string // ldap://127.0.0.1:port
	Addr string
	cmd  *exec.Cmd
}

// Binary is slapd's path, or "" when it is not installed.
func Binary() string {
	for _, p := range []string{"/usr/sbin/slapd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// schemaFile is sendmail's schema: Debian's sendmail-cf copy, or ours.
func schemaFile() string {
	for _, p := range []string{"/usr/share/sendmail/cf/sendmail.schema", "/etc/ldap/schema/sendmail.schema"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "sendmail.schema")
}

// Start loads ldif (entries below Suffix; the suffix entry itself is
// added) into a new database and starts slapd on addr ("" for a free
// port on 127.0.0.1). The test is skipped when slapd is not installed.
func Start(t testing.TB, addr, ldif string) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Skip("slapd not installed")
	}
	if addr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		ln.Close()
	}
	s := &Server{t: t, dir: t.TempDir(), Addr: addr, URI: "ldap://" + addr}
	os.MkdirAll(filepath.Join(s.dir, "db"), 0o700)
	var conf strings.Builder
	for _, sc := range []string{"core", "cosine", "inetorgperson", "nis", "misc"} {
		fmt.Fprintf(&conf, "include /etc/ldap/schema/%s.schema\n", sc)
	}
	fmt.Fprintf(&conf, "include %s\n", schemaFile())
	fmt.Fprintf(&conf, "pidfile %s/slapd.pid\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n", s.dir)
	fmt.Fprintf(&conf, "database mdb\nmaxsize 16777216\nsuffix \"%s\"\nrootdn \"%s\"\nrootpw %s\ndirectory %s/db\n", Suffix, RootDN, RootPW, s.dir)
	fmt.Fprintf(&conf, "index objectClass eq\nindex sendmailMTAKey eq\nindex mailLocalAddress eq\n")
	s.write("slapd.conf", conf.String())
	base := "dn: " + Suffix + "\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: posthorn test\n\n"
	s.write("data.ldif", base+ldif)
	out, err := exec.Command(filepath.Join(filepath.Dir(bin), "slapadd"), "-f", s.path("slapd.conf"), "-l", s.path("data.ldif")).CombinedOutput()
	if err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) path(name string) string { return filepath.Join(s.dir, name) }

func (s *Server) write(name, text string) {
	if err := os.WriteFile(s.path(name), []byte(text), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// Start starts slapd (again, after Stop) and waits until it accepts
// connections.
func (s *Server) Start() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	var stderr bytes.Buffer
	cmd := exec.Command(Binary(), "-f", s.path("slapd.conf"), "-h", s.URI+"/", "-d", "0")
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.t.Fatalf("slapd did not start: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends slapd and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}
