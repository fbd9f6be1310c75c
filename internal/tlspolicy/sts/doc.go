// Package sts is posthorn's MTA-STS client (RFC 8461, SMTP MTA Strict
// Transport Security): the policy a domain publishes over HTTPS, found
// through DNS, cached on disk, and matched against the domain's MX hosts.
//
// # The TXT record (RFC 8461 §3.1)
//
// "_mta-sts.<domain>" has one TXT record that starts with "v=STSv1":
//
//	v=STSv1; id=20260401T010101;
//
// fields separated by ";" with optional white space, the version first,
// an id of 1 to 32 letters and digits, other "name=value" fields ignored.
// TXT records that do not start with "v=STSv1" are ignored; more than one
// that does, or one that does not parse, means the domain has no valid
// record. The id changes when the policy does.
//
// # The policy (RFC 8461 §3.2)
//
// https://mta-sts.<domain>/.well-known/mta-sts.txt, fetched with a
// certificate valid for mta-sts.<domain> (the system's roots, or the
// configured CA file), no redirects followed, HTTP 200 with a text/plain
// body of at most 64 KiB, within 10 seconds (Fetcher.Timeout). The body
// is "key: value" lines ending in CRLF or LF:
//
//	version: STSv1
//	mode: enforce
//	mx: mail.example.com
//	mx: *.example.net
//	max_age: 604800
//
// version (STSv1), mode (enforce, testing or none) and max_age (seconds,
// at most 31557600) are required; mx lines (one or more) too, except with
// mode none. White space around values is ignored; unknown keys are
// ignored, as are blank lines; of a key given twice (mx excepted) the
// first counts. Anything else is an invalid policy.
//
// # MX names (RFC 8461 §4.1)
//
// An MX host matches an mx pattern when the names are equal (case
// ignored, a trailing dot ignored), or when the pattern is "*.rest" and
// the host is one label followed by ".rest": "*.example.com" matches
// "mx1.example.com", not "example.com" nor "a.b.example.com".
//
// # Cache (RFC 8461 §5.1)
//
// A fetched policy is kept in Cache.Dir, one file per domain (JSON: the
// domain, the TXT id, when it was fetched, the policy text), written to a
// temporary file, synced and renamed, so that every process (the daemon,
// queue runs) shares it and a crash leaves the old one. It is valid for
// its max_age from the fetch. For each delivery:
//
//   - the TXT record names an id: the cached policy when it has that id
//     and is valid; else the policy is fetched again (and cached); when
//     that fails, a valid cached policy still applies;
//   - no TXT record, or none valid, or the lookup failed: a valid cached
//     policy applies (an attacker who removes the record does not remove
//     the policy), else there is none;
//   - a fetch that failed is not tried again for 5 minutes (FailureDelay)
//     by the same process.
//
// A domain with no policy, or mode none, is delivered to as without
// MTA-STS. The verdict on a host (enforce: only MX names that match, only
// with a certificate valid for the MX name; testing: deliver anyway and
// report) is the caller's (package tlspolicy).
package sts
