// Package tlsrpt is SMTP TLS reporting (RFC 8460) for posthorn's outbound
// mail: every session's TLS result is kept per policy domain, and once a
// day each domain that asks for reports gets the previous day's, as RFC
// 8460 JSON, gzip'd, in a mail queued like any other.
//
// # Which domains
//
// A domain asks for reports with a TXT record at _smtp._tls.<domain>
// (RFC 8460 §3):
//
//	v=TLSRPTv1; rua=mailto:tlsrpt@example.com,https://report.example.com/v1
//
// exactly one record starting with "v=TLSRPTv1", fields separated by ";",
// rua a comma-separated list of URIs. posthorn sends to the mailto: ones
// (percent-decoded); https: reporting is not implemented and is skipped.
// Sessions are only recorded for domains that publish such a record
// (looked up when the session is recorded, through the resolver's cache).
//
// # The store (Store)
//
// One file per UTC day in Store.Dir (under the queue directory), named
// YYYY-MM-DD.jsonl, each line one session as JSON (Session): the time,
// the policy domain, the policy type (tlsa, sts, no-policy-found) with
// its policy strings and MX patterns, the MX host and the addresses, and
// the result ("" for success, else an RFC 8460 result type such as
// starttls-not-supported, certificate-expired, validation-failure,
// dnssec-invalid, sts-policy-fetch-error) with a detail. Lines are
// appended with O_APPEND in one write each, so the daemon and queue runs
// may write at once; a line that does not parse (a crash mid-write) is
// skipped when read.
//
// # Reports (Reporter.Run)
//
// For every day before today (UTC) with a file, each domain's sessions
// are aggregated as RFC 8460 §4.4 says: per policy, the counts of
// successful and failed sessions, and failure details grouped by result
// type, sending and receiving address, MX host and detail. The report
//
//	{"organization-name": ..., "date-range": {"start-datetime":
//	"2030-01-01T00:00:00Z", "end-datetime": "2030-01-01T23:59:59Z"},
//	"contact-info": ..., "report-id": ..., "policies": [...]}
//
// is gzip'd and attached (application/tlsrpt+gzip, RFC 8460 §5.3) to a
// multipart/report; report-type="tlsrpt" message From the reporting
// address, with the Subject "Report Domain: <domain> Submitter: <$j>
// Report-ID: <id>" and the TLS-Report-Domain and TLS-Report-Submitter
// headers, queued for the domain's mailto: addresses (Reporter.Submit).
// A domain sent is written to YYYY-MM-DD.sent, so that a run cut short
// does not send it twice; when every domain of the day is done, both
// files are removed. A domain that no longer publishes a record gets no
// report. The message is not DKIM-signed unless a milter signs it (RFC
// 8460 §5.3 asks for a signature).
package tlsrpt
