package daemon

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posthorn/posthorn/conf"
)

func greeter(ctx context.Context, c net.Conn, p conf.DaemonPort) {
	fmt.Fprintf(c, "220 %s ready\r\n", p.Name)
	bufio.NewReader(c).ReadString('\n')
}

func start(t *testing.T, cfg Config) (*Daemon, context.CancelFunc, chan error) {
	t.Helper()
	if cfg.Ports == nil {
		cfg.Ports = []conf.DaemonPort{{Name: "MTA", Family: "inet", Addr: "127.0.0.1", Port: 0}}
	}
	if cfg.Handler == nil {
		cfg.Handler = greeter
	}
	ready := make(chan struct{})
	cfg.Ready = func() { close(ready) }
	d, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Serve returned early: %v", err)
	}
	return d, cancel, done
}

func TestServeLifecycle(t *testing.T) {
	pid := filepath.Join(t.TempDir(), "run", "sendmail.pid")
	d, cancel, done := start(t, Config{PidFile: pid, CommandLine: "sendmail -bD -q30m"})
	data, err := os.ReadFile(pid)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d\nsendmail -bD -q30m\n", os.Getpid()); string(data) != want {
		t.Errorf("pid file = %q, want %q", data, want)
	}
	if fi, _ := os.Stat(pid); fi.Mode().Perm() != 0o640 {
		t.Errorf("pid file mode %v", fi.Mode())
	}
	c, err := net.Dial("tcp", d.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	if line != "220 MTA ready\r\n" {
		t.Errorf("greeting %q", line)
	}
	c.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pid); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
	if _, err := net.Dial("tcp", d.Addrs()[0].String()); err == nil {
		t.Error("listener still accepting after shutdown")
	}
}

func TestShutdownGrace(t *testing.T) {
	d, cancel, done := start(t, Config{
		Grace: 50 * time.Millisecond,
		Handler: func(ctx context.Context, c net.Conn, p conf.DaemonPort) {
			<-ctx.Done() // a session that never ends by itself
		},
	})
	c, _ := net.Dial("tcp", d.Addrs()[0].String())
	defer c.Close()
	for d.Active() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not bound an endless session")
	}
}

func TestSignalsReloadAndStop(t *testing.T) {
	reloaded := make(chan struct{}, 1)
	_, _, done := start(t, Config{Reload: func() error { reloaded <- struct{}{}; return nil }})
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	select {
	case <-reloaded:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGHUP did not reload")
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not stop the daemon")
	}
}

// The queue loop runs for the daemon's lifetime and is stopped first; then
// Drain gets Grace to finish the deliveries in progress, and Serve does not
// return before Drain has.
func TestQueueAndDrain(t *testing.T) {
	var order []string
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	running := make(chan struct{})
	_, cancel, done := start(t, Config{
		QueueInterval: 30 * time.Minute,
		Grace:         50 * time.Millisecond,
		Queue: func(ctx context.Context) {
			close(running)
			<-ctx.Done()
			note("queue stopped")
		},
		Drain: func(ctx context.Context) {
			note("drain started")
			<-ctx.Done() // a delivery that only ends when cancelled
			note("drain cancelled")
		},
	})
	<-running
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Grace did not bound the drain")
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(order, ", ") != "queue stopped, drain started, drain cancelled" {
		t.Errorf("order: %v", order)
	}
}

func TestBindError(t *testing.T) {
	l, _ := net.Listen("tcp4", "127.0.0.1:0")
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err := Listen(Config{Ports: []conf.DaemonPort{{Name: "MTA", Family: "inet", Addr: "127.0.0.1", Port: port}}})
	if err == nil || !strings.Contains(err.Error(), "daemon MTA: cannot bind") {
		t.Errorf("err = %v", err)
	}
}
