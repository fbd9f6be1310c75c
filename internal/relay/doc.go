// Package relay is posthorn's outbound SMTP client: the esmtp, smtp,
// smtp8, dsmtp and relay mailers the queue runner calls for remote
// recipients. It speaks to the next hop as sendmail 8.17's client does,
// command for command (the golden tests replay the reference captures).
//
// # Use
//
//	c := relay.New(relay.Config{Hostname: $j, Resolver: r, HostStatus: t, ...})
//	defer c.Close()                                  // QUIT to cached connections
//	results := c.Deliver(ctx, delivery)              // a runner.Mailer
//
// Deliver takes one runner.Delivery (one message, the recipients of one
// mailer and host) and returns one runner.Result per recipient, in order.
// It is safe for concurrent use; MaxPerDestination bounds the calls that
// run at once for one Delivery.Host.
//
// # Next hop (Delivery.Host)
//
//	remote.example         the MX hosts of remote.example, best first (its
//	                       own A/AAAA when it has no MX: the resolver's implicit MX)
//	[mx.example]           mx.example's addresses, no MX lookup
//	[192.0.2.1]            that address; [IPv6:2001:db8::1] too
//	any of them:port       another port than Config.Port (25)
//
// MX hosts that are this host (Config.IsLocal), and every host not
// preferred to them, are dropped; nothing left is "554 5.3.5 Local
// configuration error" (MX list points back to us). Each host is tried in
// turn, and each of its addresses until connect() succeeds. A host the
// host status says is down is skipped with the failure recorded for it
// ("Deferred: Connection refused by mx.example.", relay= without an
// address, as sendmail).
//
// # Dialogue
//
// The greeting (Timeout.initial), then EHLO $j (HELO after a 5xx to
// EHLO; the smtp and smtp8 mailers say EHLO only to a greeting that
// contains "ESMTP"). A peer that answers EHLO with our own name is a loop:
// "553 5.3.5 <host> config error: mail loops back to me (MX problem?)".
// STARTTLS when offered: the certificate is checked to log verify=OK or
// FAIL and accepted either way; after a failed handshake the same address
// is tried again without STARTTLS on a new connection. Config.TLSPolicy
// (package tlspolicy: the TLS policy map, DANE, MTA-STS) is asked before
// each host is tried and may change that (tls.go): no STARTTLS
// (TLSNone); STARTTLS required (TLSEncrypt), or required with a peer its
// Verify authenticates (TLSVerify), a session that does not meet it ending
// before MAIL with "403 4.7.0 TLS required (DANE): mx.example. does not
// offer STARTTLS" or "403 4.7.0 TLS handshake failed (DANE: no matching
// TLSA record)" and no plain-text retry; or not to try the host at all
// (Refuse: an MX outside an MTA-STS policy). The outcome of every TLS
// attempt goes to its Report hook (TLS reporting). Then, per message:
//
//	MAIL From:<sender> SIZE=n SMTPUTF8 BODY=8BITMIME ENVID=x RET=HDRS
//	RCPT To:<user> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user   (each recipient)
//	DATA, the message, "."
//
// SIZE= when offered (sendmail's estimate from the qf: df size plus each H
// line less three octets); a peer's SIZE limit below it fails every
// recipient with "552 5.3.4 Message is too large; N bytes max" before
// MAIL. BODY= is the job's body type when the peer offers 8BITMIME;
// ENVID/RET and NOTIFY/ORCPT only when it offers DSN. With PIPELINING the
// RCPTs and DATA go in one write (in batches of 100 RCPTs) and the
// replies are read after; when every RCPT was refused and the peer still
// says 354, the message is just "." (sendmail's behaviour); a refused DATA
// gets RSET. The message has CRLF line ends, a leading dot doubled, each
// header line cut at 2303 characters and every line longer than the
// mailer's limit (990; 2040 for relay) cut after limit-1 characters with
// "!" and continued on a line starting with a space.
//
// 8-bit data to a peer without 8BITMIME (mailers other than smtp8 and
// relay, which pass it on, and unless the greeting said 8BIT-OK) follows
// EightBitMode: Pass8 (sendmail's default) converts a MIME message to
// 7-bit MIME and sends any other as it is; Mimefy and Strict convert
// every message, Mimefy also labels undeclared 8-bit data BODY=8BITMIME
// to peers that take it and gives non-MIME 8-bit messages MIME headers.
// The conversion is sendmail's mime8to7 (see mime8.go).
//
// A connection that ends a transaction cleanly is kept idle
// (ConnectionCacheSize, default 2; ConnectionCacheTimeout, default 5m),
// by host name and port, and probed with RSET before it is used again
// ("Using cached ESMTP connection to mx.example. via esmtp...").
//
// # Results
//
//   - 2xx to the final dot: sent; Relay "mx.example. [192.0.2.1]", Stat the
//     reply's text ("Ok: queued as 4AB12"), DSN its enhanced code. A
//     recipient with NOTIFY=SUCCESS relayed to a peer without DSN is
//     Relayed (the runner sends sendmail's "relayed" receipt).
//   - 5xx to RCPT: that recipient fails: 550 "User unknown" for 550, 551
//     and 553, 554 "Service unavailable" otherwise, the enhanced code from
//     the reply (or sendmail's for the code), Reply the remote reply.
//   - 4xx to RCPT: that recipient is deferred with the reply as text.
//   - a refused MAIL or DATA, or final reply: every recipient concerned, the same way.
//   - no connection, a greeting or EHLO refused, a timeout, a lost
//     connection: the next host is tried; after the last, deferred with
//     sendmail's text ("Connection refused by mx.example.", "Connection
//     timed out with mx.example.", "Connection reset by mx.example.",
//     dsn 4.4.1 for connect(), 4.4.2 later) and Relay the last host tried.
//   - temporary failures before the message was sent go on to the next
//     MX in the same attempt; once the data has started, a lost
//     connection defers (the peer may have the message: it is never
//     reported sent, and not sent to another host in the same attempt).
//   - a domain that does not exist: 550 5.1.2 "Host unknown (Name server:
//     x: host not found)", diagnostic "550 Host unknown"; a null MX: 5.1.10
//     "556 Host does not accept mail: MX 0 ."; a lookup failure: deferred.
//   - more trace headers (Received, Via, Mail-From, X400-Received) than
//     MaxHopCount: "554 5.4.6 Too many hops" without connecting.
//
// Every host's outcome is recorded in HostStatus (sendmail's sticky
// statuses: connection failures, a refused greeting, a 4xx to the final
// dot mark the host down; a refused recipient does not).
//
// With HostLocks (SingleThreadDelivery) a host is locked before it is
// connected to and stays locked while the connection is open, idle ones
// included; a host locked by another process is skipped: the next host,
// else 451 4.4.5 "Deferred" with relay= the host name. Deliveries of one
// Client to a host take turns (single.go).
//
// # Output
//
// -v (Delivery.Verbose): "<rcpt>... Connecting to mx.example. port 2526
// via esmtp..." (the port when not 25), ">>> " and each command, every
// reply line, ">>> ." for the message. DSN transcript
// (Delivery.TranscriptOnly): "... while talking to mx.example.:", the
// command and "<<< " reply lines of each 4xx or 5xx reply, as sendmail's
// xf file. Log: "STARTTLS=client, relay=mx.example., version=TLSv1.3,
// verify=FAIL, cipher=TLS_AES_128_GCM_SHA256, bits=128/128,
// policy=opportunistic" (verify= and policy= as the TLS requirement says:
// TRUSTED for DANE, NONE when nothing was checked; policy=dane, sts,
// sts-testing, map, default), "STARTTLS=client, relay=mx.example.,
// verify=FAIL, policy=dane, error: no matching TLSA record", "timeout
// waiting for input from mx.example. during client greeting", SYSERR
// lines for loops and hop counts. The to= lines are the runner's, from
// the Results.
//
// # LMTP
//
// LMTP (NewLMTP) is the local mailer over LMTP (RFC 2033) to one server
// on a TCP or Unix socket, such as Dovecot's lmtp: sendmail.cf's
// "Mlocal, P=[IPC], F=...z..., A=TCP host port" or "A=FILE /path". One
// transaction carries all local recipients of a message:
//
//	220 greeting, LHLO $j (Timeout.lhlo), then per message
//	MAIL From:<sender> SIZE=n SMTPUTF8 BODY=8BITMIME   (as offered; no DSN parameters)
//	RCPT To:<user>      the local user, as sendmail's local mailer ("RCPT To:<bob>")
//	DATA, the message (no line folding), "."
//	one reply per accepted RCPT, in RCPT order
//
// Each recipient takes its own reply after the data: 2xx delivered (the
// runner sends any NOTIFY=SUCCESS receipt), 4xx deferred, 5xx bounced;
// a refused RCPT as for SMTP ("550 User unknown"). No server, a refused
// greeting or LHLO (even 5xx: the store is this site's), a lost session:
// deferred, never bounced; replies not received before a session was
// lost defer their recipients. Sessions are kept idle for the next
// message (ConnectionCacheSize/Timeout) and probed with RSET. -v shows
// "<rcpt>... Connecting to [127.0.0.1] port 24 via local..." and the
// dialogue, as sendmail's VERB does for its LMTP local mailer; relay= is
// "host [address]" or the socket's path.
//
// # Differences from sendmail
//
// sendmail prints a recipient's result on -v as soon as it knows it (in
// the middle of a pipelined dialogue); the runner prints them after
// Deliver. A body line longer than 2047 octets is folded throughout
// (sendmail folds each 2047-octet piece anew and can send longer lines).
// Without conversion the body is sent as it is (sendmail re-writes MIME
// part headers and clears the high bit of multipart prologues even then).
// A lost connection during the data is not retried at the next MX.
package relay
