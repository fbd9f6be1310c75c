package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Report is an RFC 8460 §4.4 report.
type Report struct {
	OrganizationName string    `json:"organization-name"`
	DateRange        DateRange `json:"date-range"`
	ContactInfo      string    `json:"contact-info"`
	ReportID         string    `json:"report-id"`
	Policies         []Policy  `json:"policies"`
}

// DateRange is the report's period.
type DateRange struct {
	Start string `json:"start-datetime"`
	End   string `json:"end-datetime"`
}

// Policy is one policy's results.
type Policy struct {
	Policy         PolicyDesc      `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details,omitempty"`
}

// PolicyDesc says which policy.
type PolicyDesc struct {
	Type   string   `json:"policy-type"`
	String []string `json:"policy-string,omitempty"`
	Domain string   `json:"policy-domain"`
	MXHost []string `json:"mx-host,omitempty"`
}

// Summary counts the sessions.
type Summary struct {
	Successful int `json:"total-successful-session-count"`
	Failed     int `json:"total-failure-session-count"`
}

// FailureDetail groups failed sessions.
type FailureDetail struct {
	ResultType  string `json:"result-type"`
	SendingIP   string `json:"sending-mta-ip,omitempty"`
	ReceivingMX string `json:"receiving-mx-hostname,omitempty"`
	ReceivingIP string `json:"receiving-ip,omitempty"`
	Count       int    `json:"failed-session-count"`
	Info        string `json:"additional-information,omitempty"`
}

// Build aggregates one domain's sessions of one day into its report.
func Build(day time.Time, domain, org, contact, submitter string, sessions []Session) Report {
	day = day.UTC().Truncate(24 * time.Hour)
	r := Report{OrganizationName: org, ContactInfo: contact,
		DateRange: DateRange{Start: day.Format(time.RFC3339), End: day.Add(24*time.Hour - time.Second).Format(time.RFC3339)},
		ReportID:  fmt.Sprintf("%s_%s@%s", day.Format("20060102"), domain, submitter)}
	type fkey struct{ typ, src, mx, ip, info string }
	type pol struct {
		p        Policy
		failures map[fkey]int
	}
	byPolicy := map[string]*pol{}
	var order []string
	for _, s := range sessions {
		if s.Domain != domain {
			continue
		}
		key := s.PolicyType + "\x00" + strings.Join(s.PolicyString, "\n") + "\x00" + strings.Join(s.MXHosts, ",")
		p := byPolicy[key]
		if p == nil {
			p = &pol{p: Policy{Policy: PolicyDesc{Type: s.PolicyType, String: s.PolicyString, Domain: domain, MXHost: s.MXHosts}},
				failures: map[fkey]int{}}
			byPolicy[key] = p
			order = append(order, key)
		}
		if s.Result == "" {
			p.p.Summary.Successful++
			continue
		}
		p.p.Summary.Failed++
		k := fkey{typ: s.Result, mx: s.MX, info: s.Detail}
		if s.SendingIP.IsValid() {
			k.src = s.SendingIP.String()
		}
		if s.IP.IsValid() {
			k.ip = s.IP.String()
		}
		p.failures[k]++
	}
	sort.Strings(order)
	for _, key := range order {
		p := byPolicy[key]
		for k, n := range p.failures {
			p.p.FailureDetails = append(p.p.FailureDetails, FailureDetail{ResultType: k.typ, SendingIP: k.src, ReceivingMX: k.mx, ReceivingIP: k.ip, Count: n, Info: k.info})
		}
		sort.Slice(p.p.FailureDetails, func(i, j int) bool {
			a, b := p.p.FailureDetails[i], p.p.FailureDetails[j]
			return fmt.Sprint(a.ResultType, a.ReceivingMX, a.ReceivingIP, a.SendingIP, a.Info) < fmt.Sprint(b.ResultType, b.ReceivingMX, b.ReceivingIP, b.SendingIP, b.Info)
		})
		r.Policies = append(r.Policies, p.p)
	}
	return r
}

// FileName is the attachment's name (RFC 8460 §5.1).
func FileName(r Report, submitter, domain string) string {
	start, _ := time.Parse(time.RFC3339, r.DateRange.Start)
	end, _ := time.Parse(time.RFC3339, r.DateRange.End)
	return fmt.Sprintf("%s!%s!%d!%d.json.gz", submitter, domain, start.Unix(), end.Unix())
}

// Message is the report as a mail (RFC 8460 §5.3), with CRLF line ends.
// date and messageID are the Date and Message-Id headers (left out when
// "": the queue adds them); boundary separates the parts.
func Message(r Report, from string, to []string, submitter, domain, date, messageID, boundary string) ([]byte, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(js)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	h := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }
	h("From: %s", from)
	h("To: %s", strings.Join(to, ", "))
	if date != "" {
		h("Date: %s", date)
	}
	if messageID != "" {
		h("Message-Id: %s", messageID)
	}
	h("Subject: Report Domain: %s Submitter: %s Report-ID: <%s>", domain, submitter, r.ReportID)
	h("TLS-Report-Domain: %s", domain)
	h("TLS-Report-Submitter: %s", submitter)
	h("MIME-Version: 1.0")
	h("Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n\tboundary=\"%s\"", boundary)
	h("")
	h("This is a MIME-encapsulated message.")
	h("")
	h("--%s", boundary)
	h("Content-Type: text/plain; charset=us-ascii")
	h("")
	h("This is an aggregate TLS report from %s for %s,", submitter, domain)
	h("covering %s to %s (RFC 8460).", r.DateRange.Start, r.DateRange.End)
	h("")
	h("--%s", boundary)
	name := FileName(r, submitter, domain)
	h("Content-Type: application/tlsrpt+gzip; name=\"%s\"", name)
	h("Content-Disposition: attachment; filename=\"%s\"", name)
	h("Content-Transfer-Encoding: base64")
	h("")
	enc := base64.StdEncoding.EncodeToString(gz.Bytes())
	for len(enc) > 76 {
		h("%s", enc[:76])
		enc = enc[76:]
	}
	h("%s", enc)
	h("")
	h("--%s--", boundary)
	return b.Bytes(), nil
}
