package tlsrpt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Reporter sends the daily reports.
type Reporter struct {
	Store     *Store
	DNS       DNS
	Submitter string // $j: the reporting MTA
	From      string // the reports' From and envelope sender
	Org       string // organization-name; "": Submitter
	Contact   string // contact-info; "": From
	// Submit queues a message for the recipients.
	Submit func(from string, to []string, msg []byte) error
	Now    func() time.Time
	// Date formats the Date header (rfcdate.Format); nil leaves Date and
	// Message-Id to the queue.
	Date func(time.Time) string
	Logf func(format string, args ...any)
}

func (r *Reporter) logf(format string, args ...any) {
	if r.Logf != nil {
		r.Logf(format, args...)
	}
}

// Run sends the reports of every complete day not yet sent. It returns
// the number of reports queued.
func (r *Reporter) Run(ctx context.Context) (int, error) {
	days, err := r.Store.Days()
	if err != nil {
		return 0, err
	}
	today := r.Now().UTC().Truncate(24 * time.Hour)
	queued := 0
	for _, day := range days {
		if !day.Before(today) {
			continue
		}
		n, err := r.day(ctx, day)
		queued += n
		if err != nil {
			return queued, err
		}
	}
	return queued, nil
}

// day sends one day's reports, and removes the day when all are queued.
func (r *Reporter) day(ctx context.Context, day time.Time) (int, error) {
	sessions, err := r.Store.Sessions(day)
	if err != nil {
		return 0, err
	}
	sent := r.Store.sent(day)
	domains := map[string]bool{}
	for _, s := range sessions {
		domains[s.Domain] = true
	}
	var names []string
	for d := range domains {
		names = append(names, d)
	}
	sort.Strings(names)
	queued := 0
	var firstErr error
	for _, domain := range names {
		if sent[domain] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return queued, err
		}
		ok, err := r.send(ctx, day, domain, sessions)
		if ok {
			queued++
		}
		if err != nil {
			// The others go on; this domain is tried again at the next run.
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if err := r.Store.markSent(day, domain); err != nil {
			return queued, err
		}
	}
	if firstErr != nil {
		return queued, firstErr
	}
	r.Store.done(day)
	return queued, nil
}

// send queues one domain's report of a day; ok says it was queued. A
// domain without a usable record gets none (and no error).
func (r *Reporter) send(ctx context.Context, day time.Time, domain string, sessions []Session) (ok bool, err error) {
	txt, err := r.DNS.TXT(ctx, "_smtp._tls."+domain)
	if err != nil {
		return false, fmt.Errorf("TLS report for %s: %w", domain, err)
	}
	rec, err := ParseRecord(txt.Texts)
	if err != nil || len(rec.Mailto) == 0 {
		r.logf("TLS report for %s of %s not sent: %s", domain, day.Format("2006-01-02"), reason(err))
		return false, nil
	}
	rep := Build(day, domain, r.org(), r.contact(), r.Submitter, sessions)
	date, id := "", ""
	if r.Date != nil {
		date, id = r.Date(r.Now()), r.messageID()
	}
	msg, err := Message(rep, r.From, rec.Mailto, r.Submitter, domain, date, id, boundary())
	if err != nil {
		return false, err
	}
	if err := r.Submit(r.From, rec.Mailto, msg); err != nil {
		return false, fmt.Errorf("TLS report for %s: %w", domain, err)
	}
	r.logf("TLS report for %s of %s queued for %s", domain, day.Format("2006-01-02"), strings.Join(rec.Mailto, ", "))
	return true, nil
}

func reason(err error) string {
	if err == nil {
		return "no mailto: address in its rua"
	}
	return err.Error()
}

func (r *Reporter) org() string {
	if r.Org != "" {
		return r.Org
	}
	return r.Submitter
}

func (r *Reporter) contact() string {
	if r.Contact != "" {
		return r.Contact
	}
	return r.From
}

func (r *Reporter) messageID() string {
	return "<" + r.Now().UTC().Format("200601021504") + "." + randHex(6) + "@" + r.Submitter + ">"
}

func boundary() string { return "tlsrpt-" + randHex(12) }

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// List writes the sessions kept, per day, domain and policy, with the
// failures: what -bt's /tlsrpt shows. domain "" lists every domain.
func (s *Store) List(w io.Writer, domain string) error {
	days, err := s.Days()
	if err != nil {
		return err
	}
	if len(days) == 0 {
		fmt.Fprintln(w, "no TLS report data")
		return nil
	}
	for _, day := range days {
		sessions, err := s.Sessions(day)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		var domains []string
		for _, x := range sessions {
			if !seen[x.Domain] && (domain == "" || x.Domain == domain) {
				seen[x.Domain] = true
				domains = append(domains, x.Domain)
			}
		}
		sort.Strings(domains)
		sent := s.sent(day)
		for _, d := range domains {
			state := ""
			if sent[d] {
				state = " (report queued)"
			}
			fmt.Fprintf(w, "%s %s%s\n", day.Format("2006-01-02"), d, state)
			rep := Build(day, d, "", "", "", sessions)
			for _, p := range rep.Policies {
				fmt.Fprintf(w, "\tpolicy %s", p.Policy.Type)
				if len(p.Policy.MXHost) > 0 {
					fmt.Fprintf(w, " (mx %s)", strings.Join(p.Policy.MXHost, ", "))
				}
				fmt.Fprintf(w, ": %d successful, %d failed\n", p.Summary.Successful, p.Summary.Failed)
				for _, f := range p.FailureDetails {
					fmt.Fprintf(w, "\t\t%d %s mx=%s ip=%s", f.Count, f.ResultType, f.ReceivingMX, f.ReceivingIP)
					if f.Info != "" {
						fmt.Fprintf(w, ": %s", f.Info)
					}
					fmt.Fprintln(w)
				}
			}
		}
	}
	return nil
}
