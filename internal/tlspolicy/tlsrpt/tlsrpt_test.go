package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/resolve"
)

func TestParseRecord(t *testing.T) {
	for _, tt := range []struct {
		texts  []string
		mailto []string
		other  []string
		err    bool
	}{
		{[]string{"v=TLSRPTv1;rua=mailto:reports@example.com"}, []string{"reports@example.com"}, nil, false}, // RFC 8460 §3 examples
		{[]string{"v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt"}, nil, []string{"https://reporting.example.com/v1/tlsrpt"}, false},
		{[]string{"v=TLSRPTv1; rua=mailto:a@example.com, mailto:b%2Bx@example.net,https://r.example/"}, []string{"a@example.com", "b+x@example.net"}, []string{"https://r.example/"}, false},
		{[]string{"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.com;"}, []string{"a@example.com"}, nil, false},
		{[]string{"v=TLSRPTv1; ext=1; rua=mailto:a@example.com"}, []string{"a@example.com"}, nil, false},
		{[]string{"v=TLSRPTv1"}, nil, nil, true},
		{[]string{"v=TLSRPTv1; rua=mailto:not an address"}, nil, nil, true},
		{[]string{"v=TLSRPTv1; rua=mailto:a@x", "v=TLSRPTv1; rua=mailto:b@x"}, nil, nil, true},
		{[]string{"v=TLSRPTv2; rua=mailto:a@x"}, nil, nil, true},
		{nil, nil, nil, true},
	} {
		rec, err := ParseRecord(tt.texts)
		if (err != nil) != tt.err || !reflect.DeepEqual(rec.Mailto, tt.mailto) || !reflect.DeepEqual(rec.Other, tt.other) {
			t.Errorf("%q: %+v %v", tt.texts, rec, err)
		}
	}
}

type fakeTXT struct {
	txt    map[string][]string
	asked  int
	broken bool // _smtp._tls.broken.example fails
}

func (f *fakeTXT) TXT(ctx context.Context, name string) (resolve.TXTResult, error) {
	f.asked++
	if f.broken && name == "_smtp._tls.broken.example" {
		return resolve.TXTResult{}, errors.New("SERVFAIL")
	}
	return resolve.TXTResult{Texts: f.txt[name]}, nil
}

var day = time.Date(2030, 3, 4, 0, 0, 0, 0, time.UTC)

func sess(at time.Duration, domain, typ, result, mx, ip string) Session {
	s := Session{Time: day.Add(at), Domain: domain, PolicyType: typ, Result: result, MX: mx,
		IP: netip.MustParseAddr(ip), SendingIP: netip.MustParseAddr("127.0.0.1")}
	if typ == "sts" {
		s.PolicyString = []string{"version: STSv1", "mode: enforce", "mx: *.example.com", "max_age: 86400"}
		s.MXHosts = []string{"*.example.com"}
	}
	return s
}

func testStore(t *testing.T) (*Store, *fakeTXT) {
	dns := &fakeTXT{broken: true, txt: map[string][]string{
		"_smtp._tls.example.com": {"v=TLSRPTv1; rua=mailto:tlsrpt@example.com"},
		"_smtp._tls.example.net": {"v=TLSRPTv1; rua=mailto:a@example.net,mailto:b@example.net"},
	}}
	return &Store{Dir: filepath.Join(t.TempDir(), "tlsrpt"), DNS: dns}, dns
}

func TestStoreRecordsWantedDomains(t *testing.T) {
	s, dns := testStore(t)
	s.Record(sess(time.Hour, "Example.COM.", "sts", "", "mx1.example.com", "127.0.0.10"))
	s.Record(sess(90*time.Minute, "example.com", "sts", "certificate-expired", "mx2.example.com", "127.0.0.11"))
	s.Record(sess(3*time.Hour, "noreports.example", "no-policy-found", "", "mx.noreports.example", "127.0.0.12"))
	s.Record(sess(25*time.Hour, "example.com", "sts", "", "mx1.example.com", "127.0.0.10"))
	if dns.asked != 3 {
		t.Errorf("asked %d times", dns.asked) // once per domain within the hour
	}
	days, err := s.Days()
	if err != nil || len(days) != 2 || !days[0].Equal(day) || !days[1].Equal(day.Add(24*time.Hour)) {
		t.Fatalf("days %v %v", days, err)
	}
	got, err := s.Sessions(day)
	if err != nil || len(got) != 2 || got[0].Domain != "example.com" || got[1].Result != "certificate-expired" || got[1].IP.String() != "127.0.0.11" {
		t.Fatalf("sessions %+v %v", got, err)
	}
	// A torn last line (a crash while writing) is skipped.
	f, _ := os.OpenFile(filepath.Join(s.Dir, "2030-03-04.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"t":"2030-03-04T05:00:00Z","domain":"exa`)
	f.Close()
	if got, _ := s.Sessions(day); len(got) != 2 {
		t.Errorf("%d sessions after a torn line", len(got))
	}
}

func TestBuild(t *testing.T) {
	sessions := []Session{
		sess(1, "example.com", "sts", "", "mx1.example.com", "127.0.0.10"),
		sess(2, "example.com", "sts", "", "mx1.example.com", "127.0.0.10"),
		sess(3, "example.com", "sts", "certificate-expired", "mx2.example.com", "127.0.0.11"),
		sess(4, "example.com", "sts", "certificate-expired", "mx2.example.com", "127.0.0.11"),
		sess(5, "example.com", "sts", "starttls-not-supported", "mx2.example.com", "127.0.0.11"),
		sess(6, "example.com", "no-policy-found", "", "mx1.example.com", "127.0.0.10"),
		sess(7, "example.net", "no-policy-found", "", "mx.example.net", "127.0.0.20"),
	}
	r := Build(day, "example.com", "Posthorn Org", "postmaster@sender.example", "sender.example", sessions)
	js, _ := json.MarshalIndent(r, "", "  ")
	want := `{
  "organization-name": "Posthorn Org",
  "date-range": {
    "start-datetime": "2030-03-04T00:00:00Z",
    "end-datetime": "2030-03-04T23:59:59Z"
  },
  "contact-info": "postmaster@sender.example",
  "report-id": "20300304_example.com@sender.example",
  "policies": [
    {
      "policy": {
        "policy-type": "no-policy-found",
        "policy-domain": "example.com"
      },
      "summary": {
        "total-successful-session-count": 1,
        "total-failure-session-count": 0
      }
    },
    {
      "policy": {
        "policy-type": "sts",
        "policy-string": [
          "version: STSv1",
          "mode: enforce",
          "mx: *.example.com",
          "max_age: 86400"
        ],
        "policy-domain": "example.com",
        "mx-host": [
          "*.example.com"
        ]
      },
      "summary": {
        "total-successful-session-count": 2,
        "total-failure-session-count": 3
      },
      "failure-details": [
        {
          "result-type": "certificate-expired",
          "sending-mta-ip": "127.0.0.1",
          "receiving-mx-hostname": "mx2.example.com",
          "receiving-ip": "127.0.0.11",
          "failed-session-count": 2
        },
        {
          "result-type": "starttls-not-supported",
          "sending-mta-ip": "127.0.0.1",
          "receiving-mx-hostname": "mx2.example.com",
          "receiving-ip": "127.0.0.11",
          "failed-session-count": 1
        }
      ]
    }
  ]
}`
	if string(js) != want {
		t.Errorf("report:\n%s\nwant:\n%s", js, want)
	}
	if n := FileName(r, "sender.example", "example.com"); n != "sender.example!example.com!1898812800!1898899199.json.gz" {
		t.Errorf("file name %s", n)
	}
}

// readReport parses a report mail back: headers, the parts, the
// gzip'd JSON.
func readReport(t *testing.T, msg []byte) (*mail.Message, Report) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("Content-Type %q", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []string
	var rep Report
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct := p.Header.Get("Content-Type")
		parts = append(parts, strings.Fields(ct)[0])
		if strings.HasPrefix(ct, "application/tlsrpt+gzip") {
			zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, p))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.NewDecoder(zr).Decode(&rep); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(p.Header.Get("Content-Disposition"), `filename="sender.example!`) {
				t.Errorf("disposition %q", p.Header.Get("Content-Disposition"))
			}
		}
	}
	if strings.Join(parts, " ") != "text/plain; application/tlsrpt+gzip;" {
		t.Errorf("parts %q", parts)
	}
	return m, rep
}

func TestReporterRun(t *testing.T) {
	s, dns := testStore(t)
	dns.txt["_smtp._tls.gone.example"] = []string{"v=TLSRPTv1; rua=mailto:x@gone.example"}
	for _, x := range []Session{
		sess(time.Hour, "example.com", "sts", "", "mx1.example.com", "127.0.0.10"),
		sess(2*time.Hour, "example.net", "no-policy-found", "starttls-not-supported", "mx.example.net", "127.0.0.20"),
		sess(3*time.Hour, "gone.example", "no-policy-found", "", "mx.gone.example", "127.0.0.30"),
		sess(4*time.Hour, "broken.example", "no-policy-found", "", "mx.broken.example", "127.0.0.40"),
		sess(26*time.Hour, "example.com", "sts", "", "mx1.example.com", "127.0.0.10"), // today: not yet
	} {
		s.Record(x)
	}
	delete(dns.txt, "_smtp._tls.gone.example") // the domain stopped asking
	now := day.Add(30 * time.Hour)
	type sent struct {
		from string
		to   []string
		msg  []byte
	}
	var out []sent
	r := &Reporter{Store: s, DNS: dns, Submitter: "sender.example", From: "postmaster@sender.example",
		Submit: func(from string, to []string, msg []byte) error {
			out = append(out, sent{from, to, msg})
			return nil
		},
		Now: func() time.Time { return now }, Date: func(t time.Time) string { return t.Format(time.RFC1123Z) }}
	// broken.example's record cannot be looked up: the others are sent,
	// the day stays.
	n, err := r.Run(context.Background())
	if err == nil || n != 2 || len(out) != 2 {
		t.Fatalf("first run: %d %v, %d mails", n, err, len(out))
	}
	if days, _ := s.Days(); len(days) != 2 {
		t.Errorf("days left %v", days)
	}
	r.DNS = &fakeTXT{txt: dns.txt} // broken.example now answers (no record)
	n, err = r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The domains queued by the first run are not sent again.
	if n != 0 || len(out) != 2 {
		t.Fatalf("second run: %d, %d mails", n, len(out))
	}
	if out[0].from != "postmaster@sender.example" || strings.Join(out[0].to, ",") != "tlsrpt@example.com" {
		t.Errorf("first mail %s -> %v", out[0].from, out[0].to)
	}
	m, rep := readReport(t, out[0].msg)
	if m.Header.Get("Subject") != "Report Domain: example.com Submitter: sender.example Report-ID: <20300304_example.com@sender.example>" ||
		m.Header.Get("TLS-Report-Domain") != "example.com" || m.Header.Get("TLS-Report-Submitter") != "sender.example" {
		t.Errorf("headers %v", m.Header)
	}
	if len(rep.Policies) != 1 || rep.Policies[0].Summary.Successful != 1 || rep.ContactInfo != "postmaster@sender.example" {
		t.Errorf("report %+v", rep)
	}
	if strings.Join(out[1].to, ",") != "a@example.net,b@example.net" {
		t.Errorf("second mail to %v", out[1].to)
	}
	if !bytes.Contains(out[0].msg, []byte("\r\n\r\n")) || bytes.Contains(bytes.ReplaceAll(out[0].msg, []byte("\r\n"), nil), []byte("\n")) {
		t.Error("not CRLF throughout")
	}
	// The day is done and gone; today's stays.
	days, _ := s.Days()
	if len(days) != 1 || !days[0].Equal(day.Add(24*time.Hour)) {
		t.Errorf("days left %v", days)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "2030-03-04.sent")); !os.IsNotExist(err) {
		t.Errorf(".sent left: %v", err)
	}
}

func TestList(t *testing.T) {
	s, _ := testStore(t)
	var b bytes.Buffer
	s.List(&b, "")
	if b.String() != "no TLS report data\n" {
		t.Errorf("%q", b.String())
	}
	s.Record(sess(time.Hour, "example.com", "sts", "", "mx1.example.com", "127.0.0.10"))
	s.Record(sess(2*time.Hour, "example.com", "sts", "certificate-expired", "mx2.example.com", "127.0.0.11"))
	s.Record(sess(3*time.Hour, "example.net", "no-policy-found", "", "mx.example.net", "127.0.0.20"))
	b.Reset()
	s.List(&b, "example.com")
	want := "2030-03-04 example.com\n\tpolicy sts (mx *.example.com): 1 successful, 1 failed\n\t\t1 certificate-expired mx=mx2.example.com ip=127.0.0.11\n"
	if b.String() != want {
		t.Errorf("list:\n%s\nwant:\n%s", b.String(), want)
	}
}
