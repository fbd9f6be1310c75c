// Package milter is the MTA side of sendmail's mail filter interface
// (Milter, protocol version 6), with sendmail 8's semantics, so that
// OpenDKIM, OpenDMARC, rspamd, spamass-milter and clamav-milter work with
// posthorn unchanged.
//
// # Configuration
//
// Filters are sendmail.cf X lines (ParseFilter): a name, then S= (socket:
// inet:port@host, inet6:port@host, unix:/path, local:/path), F= (R: reject
// when the filter fails, T: tempfail; default: go on without it) and T=
// (C connect, S send, R read, E end of message; sendmail time values).
// Configure keeps the ones InputMailFilters names, in its order, with
// Milter.LogLevel and the Milter.macros.* lists (DefaultMacros are the
// lists sendmail's m4 writes).
//
// # Protocol
//
// Packets are a 4-byte big-endian length (command byte and data), the
// command byte and the data; strings are NUL-terminated (libmilter's
// mfdef.h). The MTA sends 'O' with version 6 and every action and
// protocol step it supports; the filter answers with the actions it will
// use and the steps it wants skipped or unanswered. Then, per SMTP
// session: D (macros of the next stage), C connect, H helo, M mail with
// ESMTP arguments, R per recipient, T data, L per header field, N end of
// header, B body chunks (at most 64 KiB, CRLF line ends), E end of message,
// A abort, Q quit. Each command but D, A and Q is answered with accept,
// continue, reject, tempfail, discard, a reply code (y), skip or progress;
// E is answered with modifications first: h add header, i insert header,
// m change/delete header, + and 2 add recipient (with ESMTP arguments),
// - delete recipient, e change sender, b replace body, q quarantine. The
// packets themselves are github.com/d--j/go-milter's client; this package
// adds sendmail's behaviour around it.
//
// # Semantics
//
// A Chain opens a Session per SMTP session with one connection per filter
// (sendmail's milter_init). Each stage asks the filters in order; the
// first reject, tempfail or discard decides, an accept ends that filter's
// part in the message (or, before MAIL, the connection). A filter that
// cannot be reached, misses a timeout or answers garbage goes to error
// state for the rest of the session and answers every later stage by its
// F= flag. End of message runs each filter over the whole message in turn
// and makes its modifications (Apply) before the next filter sees it, as
// sendmail's milter_data does, so that a signature covers the changes of
// the filters before it. Log lines follow sendmail's milter.c and
// srvrsmtp.c wording.
package milter
