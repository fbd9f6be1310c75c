package tlsrpt

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/resolve"
)

// Session is one session's result (a line of the store).
type Session struct {
	Time         time.Time  `json:"t"`
	Domain       string     `json:"domain"`
	PolicyType   string     `json:"type"` // tlsa, sts, no-policy-found
	PolicyString []string   `json:"policy,omitempty"`
	MXHosts      []string   `json:"mx-host,omitempty"` // the MTA-STS policy's patterns
	MX           string     `json:"mx"`                // receiving-mx-hostname
	IP           netip.Addr `json:"ip,omitzero"`       // receiving-ip
	SendingIP    netip.Addr `json:"src,omitzero"`
	Result       string     `json:"result,omitempty"` // "": success
	Detail       string     `json:"detail,omitempty"`
}

// DNS answers TXT questions; *resolve.Resolver satisfies it.
type DNS interface {
	TXT(ctx context.Context, name string) (resolve.TXTResult, error)
}

// Store keeps sessions on disk. It is safe for concurrent use.
type Store struct {
	Dir string
	// DNS is asked whether a domain wants reports before its sessions
	// are kept; nil keeps every session.
	DNS  DNS
	Logf func(format string, args ...any)

	mu     sync.Mutex
	wanted map[string]wantEntry
}

type wantEntry struct {
	want bool
	at   time.Time
}

// wantTTL is how long a domain's "wants reports" answer is kept in
// memory (the resolver caches the record itself for its TTL).
const wantTTL = time.Hour

func (s *Store) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// wants reports whether domain publishes a TLSRPT record.
func (s *Store) wants(domain string, now time.Time) bool {
	if s.DNS == nil {
		return true
	}
	s.mu.Lock()
	w, ok := s.wanted[domain]
	s.mu.Unlock()
	if ok && now.Sub(w.at) < wantTTL && now.Sub(w.at) >= 0 {
		return w.want
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	txt, err := s.DNS.TXT(ctx, "_smtp._tls."+domain)
	if err != nil {
		return true // keep it; the report run asks again
	}
	_, err = ParseRecord(txt.Texts)
	want := err == nil
	s.mu.Lock()
	if s.wanted == nil {
		s.wanted = map[string]wantEntry{}
	}
	s.wanted[domain] = wantEntry{want: want, at: now}
	s.mu.Unlock()
	return want
}

// dayFile is the file of the UTC day of t.
func (s *Store) dayFile(t time.Time, ext string) string {
	return filepath.Join(s.Dir, t.UTC().Format("2006-01-02")+ext)
}

// Record appends a session to its day's file.
func (s *Store) Record(sess Session) {
	sess.Domain = strings.ToLower(strings.TrimSuffix(sess.Domain, "."))
	if sess.Domain == "" || !s.wants(sess.Domain, sess.Time) {
		return
	}
	b, err := json.Marshal(sess)
	if err != nil {
		return
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		s.logf("TLS report store: %v", err)
		return
	}
	f, err := os.OpenFile(s.dayFile(sess.Time, ".jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		s.logf("TLS report store: %v", err)
		return
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		s.logf("TLS report store: %v", err)
	}
}

// Days lists the days that have sessions, oldest first.
func (s *Store) Days() ([]time.Time, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var days []time.Time
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".jsonl")
		if !ok {
			continue
		}
		if d, err := time.Parse("2006-01-02", name); err == nil {
			days = append(days, d)
		}
	}
	sort.Slice(days, func(i, j int) bool { return days[i].Before(days[j]) })
	return days, nil
}

// Sessions reads a day's sessions; damaged lines are skipped.
func (s *Store) Sessions(day time.Time) ([]Session, error) {
	f, err := os.Open(s.dayFile(day, ".jsonl"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Session
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		var sess Session
		if json.Unmarshal(sc.Bytes(), &sess) == nil && sess.Domain != "" {
			out = append(out, sess)
		}
	}
	return out, sc.Err()
}

// sent lists the domains of a day whose report was queued.
func (s *Store) sent(day time.Time) map[string]bool {
	out := map[string]bool{}
	b, err := os.ReadFile(s.dayFile(day, ".sent"))
	if err != nil {
		return out
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			out[l] = true
		}
	}
	return out
}

func (s *Store) markSent(day time.Time, domain string) error {
	f, err := os.OpenFile(s.dayFile(day, ".sent"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, domain)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// done removes a day whose reports are all queued.
func (s *Store) done(day time.Time) {
	os.Remove(s.dayFile(day, ".jsonl"))
	os.Remove(s.dayFile(day, ".sent"))
}
