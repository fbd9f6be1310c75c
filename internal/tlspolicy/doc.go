// Package tlspolicy decides, for each host the relay client is about to
// try, what TLS it must get: the TLS policy map, DANE (subpackage dane,
// RFC 7672), MTA-STS (subpackage sts, RFC 8461) and the default level.
// Engine.Require is relay.Config.TLSPolicy; Engine.Decide is the same
// decision in words, for sendmail -bt's /tls. Results are recorded for
// TLS reports (subpackage tlsrpt, RFC 8460).
//
// # Levels
//
// Postfix's names (smtp_tls_security_level), in TLSDefaultLevel and the
// map:
//
//	none       no STARTTLS
//	may        STARTTLS when offered, any certificate, plain text after a
//	           failed handshake (the default)
//	encrypt    STARTTLS required, any certificate
//	dane       DANE where the host has usable validated TLSA records; where
//	           it has only unusable ones, encrypt; else may
//	dane-only  DANE required: a host without validated TLSA records is not
//	           tried
//	verify     STARTTLS required, a certificate valid (system roots, or
//	           CACertFile/CACertPath) for the match names, by default the
//	           MX host name ("hostname")
//	secure     as verify, the match names defaulting to the next-hop domain
//	           and its subdomains ("nexthop:dot-nexthop")
//
// A required level that is not met defers the recipients ("403 4.7.0 TLS
// handshake failed (DANE: no matching TLSA record)"), never falls back to
// plain text, and the next MX host is tried in the same attempt.
//
// # The policy map (TLSPolicyMap, Postfix's smtp_tls_policy_maps syntax)
//
// A text file, one entry per logical line, "#" comments and blank lines
// ignored, a line starting with white space continuing the previous one:
//
//	example.com          secure match=.example.com:example.net
//	.example.com         encrypt
//	[mx.partner.example] verify match=hostname
//	[relay.example]:587  encrypt
//	[192.0.2.1]          none
//	broken.example       may
//
// The key is the next hop as routed: a domain (its MX hosts), ".domain"
// (every subdomain of domain, when the domain itself has no entry), a
// bracketed host ("[mx.example]", from the mailertable or the smart host)
// with or without a port, or an address literal. Keys are case-insensitive;
// of a key given twice the first counts. The value is a level and
// attributes: match= (verify and secure: names separated by ":",
// "hostname" the MX host, "nexthop" the next-hop domain, "dot-nexthop" its
// subdomains, ".name" any subdomain of name, else a host name, a wildcard
// certificate name covering one label); protocols=, ciphers=, exclude=,
// tafile= and Postfix's other attributes are accepted and not interpreted
// (a warning). An entry with an unknown level or attribute defers the
// mail it would apply to (said in the deferral) instead of sending it
// with less protection than asked for. A missing file is an empty map.
//
// # The decision for one host
//
//  1. A map entry for the next hop decides, as its level says (an
//     explicit may or none turns DANE and MTA-STS off for the destination:
//     the admin's override for a broken peer). policy=map.
//  2. Otherwise, with TLSDefaultLevel none, dane-only, verify or secure,
//     that level decides. policy=default.
//  3. Otherwise (may, encrypt, dane): DANE, when the DANE option is on,
//     the destination's MX records (for a domain), the host's addresses
//     and its TLSA records (_port._tcp.host) are all DNSSEC-validated (the
//     AD bit of a resolver marked validating, see package resolve) and
//     there are TLSA records: the certificate must match one of the usable
//     ones (verify=TRUSTED), or, when none is usable, STARTTLS is required
//     without authentication (RFC 7672 §2.2). A failed TLSA lookup (a
//     validating resolver answers SERVFAIL to bogus data) means the host
//     is not tried. policy=dane. DANE wins over MTA-STS (RFC 8461 §2).
//  4. Otherwise, with MTA-STS on and a policy for the domain (package
//     sts): mode enforce tries only the MX hosts its mx patterns match,
//     each with a certificate valid for the MX host name (policy=sts);
//     mode testing delivers as may and records what enforce would have
//     refused (policy=sts-testing); mode none is no policy.
//  5. Otherwise the default level: may (policy=opportunistic), encrypt
//     (policy=default), dane without TLSA records (may).
//
// # What the relay is told
//
// Require turns a decision into a relay.TLSRequirement: the mode (none,
// opportunistic, encrypt, verify), the check (DANE matching, PKIX against
// the roots for the names; verify=OK, TRUSTED, NONE for encrypt), the
// policy= word and the label of deferral texts (DANE, MTA-STS, "TLS
// policy map: verify", "TLSDefaultLevel=encrypt"), and, with a Recorder,
// a hook that records each session under the policy type that applied
// (tlsa, sts, no-policy-found): successful when the policy was met
// (for no-policy-found: when TLS was negotiated), else with its RFC 8460
// result type; a host refused before connecting is a failed session too.
package tlspolicy
