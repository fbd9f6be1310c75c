// Package aliases implements sendmail 8's aliases file, its database
// (newaliases / sendmail -bi), and recipient expansion through aliases,
// :include: files and ~/.forward, as -bv, EXPN/VRFY and delivery see it.
//
// # The aliases file
//
// The file (AliasFile, default /etc/mail/aliases) is read line by line:
//
//	# a comment: a line whose first character is '#'
//	                                  (an empty line ends an entry, like a comment)
//	name: rcpt, rcpt, ...
//	list: alice,
//		bob,                      a line starting with SPACE or TAB continues
//		root                      the entry above it
//	long: alice, \
//	bob                               a backslash before the newline joins lines
//
// The name is everything before the first ':' (surrounding white space
// removed). It may be quoted ("quoted key") and is stored with its quotes. A
// name of the form local@domain is accepted only when domain is one of this
// host's names ($=w) and is stored as local. Names are case-insensitive: they
// are stored lower-cased.
//
// The value is the rest of the line and its continuation lines, joined with
// the newlines removed (a continuation line keeps its leading TAB or spaces),
// with the leading white space of the whole value removed. It is stored as
// written; it is split into recipients only when it is expanded: on commas
// outside double quotes, <angle brackets> and (comments). Each recipient is
// one of
//
//	user                  a local name: looked up again as an alias, then as
//	                      a login name (whose ~/.forward is honoured)
//	\user                 the local user's mailbox: no further alias or
//	                      .forward lookup
//	user@domain           local when domain is in $=w, else a remote address
//	Full Name <addr>      the same; only what is inside <> counts
//	/absolute/file        append the message to a file (mailer *file*)
//	"|program args"       pipe the message to a program (mailer prog); the
//	                      quotes keep commas and '>' from being parsed
//	:include:/path        read recipients from a file: one or more per line,
//	                      '#' comment lines and empty lines ignored
//	error:5.1.1:550 text  fail the address with that reply (the enhanced code
//	                      and the reply code are optional: error:550 text,
//	                      error:text gives 550 5.0.0)
//
// An alias named owner-<list> gives the envelope sender for deliveries made
// through <list> (the value itself when it is one plain address, else
// "owner-<list>"), so bounces for a list go to its owner.
//
// Errors, printed as "<file>: line <n>: <text>" with the line number of the
// last line read for the entry, make newaliases exit 70 (EX_SOFTWARE); the
// entry is skipped:
//
//	missing colon                              no ':' on the line
//	Non-continuation line starts with space    an indented line after a
//	                                           comment, blank line or error
//	<line>... missing value for alias          nothing after the ':'
//	<name>... cannot alias non-local names     name@domain, domain not in $=w
//	<name>... illegal alias name               an unparsable name
//
// A name given twice is a warning ("<name>... Warning: duplicate alias name
// <name>"); the last value wins and both count in the statistics.
//
// # The database
//
// newaliases writes <AliasFile>.db, a bbolt file with the bucket "aliases"
// (lower-cased name -> value, plus the marker entry "@" -> "@" that says the
// database is complete, as sendmail's) and the bucket "source" (the text
// file's size and modification time when it was built, for the staleness
// check). It is written to a temporary file in one transaction, synced and
// renamed over the old one, so a reader never sees half a database. The
// statistics line is
//
//	<file>: <n> aliases, longest <l> bytes, <t> bytes total
//
// n counts the stored entries (duplicates included), l is the longest value,
// t the sum of name and value lengths.
//
// # Expansion
//
// Expansion follows sendmail's recipient(): the send list is kept sorted by
// host (local, file and program recipients first, then remote hosts in
// alphabetical order; equal hosts in arrival order), each list is walked from
// its last element to its first, and an address already on the send list is
// a duplicate, dropped. An address that refers back to one of the aliases or
// users that produced it is a loop: it is dropped, and the alias it refers to
// is delivered to its own mailbox when it is a user (alias "alice: alice,
// bob"), otherwise it fails with "554 5.4.6 aliasing/forwarding loop broken".
// Nesting deeper than MaxDepth fails the same way. See Expander.
//
// A .forward file (ForwardPath, default $z/.forward; the first candidate
// that exists is used) is honoured only when it is a regular file (not a
// symlink) owned by the user or root, not group- or world-writable, at most
// MaxFileSize bytes, and every directory above it is owned by root or the
// user and not writable by others (a root-owned sticky directory such as
// /tmp is allowed). Otherwise it is ignored with a log line and the mail
// goes to the mailbox. Its lines are recipient lists ('#' lines and empty
// lines skipped); programs and files named in it are controlled by the
// user. An :include: file others can write may name addresses but no
// program or file; one owned by an ordinary user makes that user the
// controlling user of what it names.
//
// # Wiring
//
//	src := aliases.NewSource(aliases.SourceOptions{AliasFile: …, IsLocal: isLocal,
//		Logger: log, CheckInterval: time.Second})       // daemon: one, kept open
//	x := aliases.New(aliases.Options{Aliases: src, IsLocal: isLocal,
//		ForwardPath: …, Macros: …, DefaultUID: …, DefaultGID: …, Logger: log})
//	code := aliases.Newaliases(os.Stdout, aliasFile, aliases.BuildOptions{…}) // -bi
//	code := x.Verify(os.Stdout, args, verbose)                                   // -bv
//	err := x.CheckRecipient(rcpt)                                                // RCPT
//	ents, err := x.Vrfy(arg, j); ents, err := x.Expn(arg, j)                     // VRFY/EXPN
//	res := x.Expand(qid, rcpts...)                                               // delivery
//
// An Expander and a Source are safe for concurrent use.
package aliases
