package deliver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/status"
)

// The test binary doubles as the posthorn binary: with ChildFlag it is the
// file-delivery child, with "-maillocal" it is mail.local (for the
// many-processes test). Everything else runs the tests.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case ChildFlag:
			os.Exit(RunChild(os.Args[2:], os.Stdin, os.Stdout))
		case "-hangappend":
			// -hangappend <spool>: deliver to alice a body that stops half-way
			// (after printing "appending"), to be killed there
			opt := Options{MailSpoolDirectory: os.Args[2], LookupUser: fixedUsers(itoa(os.Geteuid())), LockTimeout: 5 * time.Second}
			a, err := New(opt)
			if err != nil {
				os.Exit(70)
			}
			body := &hangingBody{data: strings.Repeat("first half of the body\n", 20000)}
			os.Exit(exitCode(a.Mailbox(context.Background(), "alice", &Message{Sender: "dead@x", Header: []byte("Subject: killed\n"), Body: body, BodySize: 1 << 20})))
		case "-maillocal":
			// -maillocal <spool> <uid> args...
			uid := os.Args[3]
			opt := Options{MailSpoolDirectory: os.Args[2], LookupUser: fixedUsers(uid)}
			os.Exit(MailLocal(os.Args[4:], os.Stdin, os.Stderr, opt))
		}
	}
	os.Exit(m.Run())
}

// fixedUsers returns a LookupUser that knows alice, bob and carol, all with
// the given uid (the test's own, so that ownership checks pass), and no one
// else.
func fixedUsers(uid string) func(string) (*User, error) {
	return func(name string) (*User, error) {
		switch name {
		case "alice", "bob", "carol":
			n := atoi(uid)
			return &User{Name: name, UID: n, GID: n, Home: "/"}, nil
		}
		return nil, ErrUnknownUser
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func itoa(n int) string { return strconv.Itoa(n) }

// testAgent returns an Agent on a fresh spool, with its log captured.
func testAgent(t testing.TB, mod func(*Options)) (*Agent, string, *strings.Builder) {
	t.Helper()
	spool := t.TempDir()
	var log strings.Builder
	opt := Options{
		MailSpoolDirectory: spool,
		LookupUser:         fixedUsers(itoa(os.Geteuid())),
		Logger:             maillog.New(&log, "test"),
		Now:                func() time.Time { return testTime },
		LockTimeout:        5 * time.Second,
		SmrshDirectory:     filepath.Join(spool, "smrsh"),
		DefaultUser:        itoa(os.Geteuid()) + ":" + itoa(os.Getegid()),
	}
	if mod != nil {
		mod(&opt)
	}
	a, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return a, spool, &log
}

// msg is a small message with a header and body.
func msg(sender, subject, body string) *Message {
	h := "Return-Path: <" + sender + ">\nSubject: " + subject + "\n"
	return &Message{Sender: sender, Header: []byte(h), Body: strings.NewReader(body), BodySize: int64(len(body))}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// wantStatus checks err's reply code and enhanced code.
func wantStatus(t *testing.T, err error, code int, enhanced string) *status.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %d %s", code, enhanced)
	}
	st := status.From(err)
	if st.Code != code || st.Enhanced != enhanced {
		t.Fatalf("got %v, want %d %s", err, code, enhanced)
	}
	return st
}

// executableCopy copies the test binary where any user can run it, for
// children that run with other credentials.
func executableCopy(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "deliver-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	dst := filepath.Join(dir, "posthorn")
	if out, err := exec.Command("cp", self, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	os.Chmod(dst, 0o755)
	return dst
}

// hangingBody gives its data, then announces it on stdout and blocks.
type hangingBody struct{ data string }

func (h *hangingBody) ReadAt(p []byte, off int64) (int, error) {
	if off < int64(len(h.data)) {
		return copy(p, h.data[off:]), nil
	}
	fmt.Println("appending")
	select {}
}

func exitCode(err error) int {
	if err != nil {
		return 75
	}
	return 0
}
