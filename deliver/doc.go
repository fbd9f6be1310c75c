// Package deliver implements posthorn's local delivery agents: appending a
// message to a user's mbox in the mail spool (what sendmail's mail.local
// does), appending to a /file named in the aliases file or a ~/.forward
// (sendmail's *file* mailer), and piping a message into a |program
// (sendmail's prog mailer, with smrsh's restriction for ~/.forward).
//
// # The mbox format written
//
// A mailbox is a sequence of messages, each of them:
//
//	From <envelope sender> <ctime>\n   the From_ line
//	<header lines>\n                   as given by the caller (Return-Path first)
//	\n                                 the empty line that ends the header
//	<body lines>\n                     each line beginning "From " written ">From "
//	\n                                 one empty line after each message
//
// The details:
//
//   - The envelope sender is written without angle brackets; the null sender
//     <> is written MAILER-DAEMON. White space and control characters in it
//     become "_" so that the From_ line stays one line of three fields.
//   - <ctime> is the local delivery time as ctime(3) prints it:
//     "Wed Nov 25 04:34:12 2026" (day of month padded with a space).
//   - Lines end in LF. A message whose last line lacks a newline gets one
//     (real mail.local writes stale buffer bytes instead).
//   - Quoting ("mboxo"): every line of the message that begins with the five
//     bytes "From " gets a ">" in front, wherever it is. Stock mail.local
//     quotes such a line only after an empty line, Debian's mail.local not at
//     all (it adds Content-Length: instead), procmail and sendmail's own
//     *file* mailer quote every one; posthorn follows the latter, because a
//     reader that splits on any "From " line would otherwise cut a message
//     in two. Lines that are already ">From ", " From", "FROM" or "From:"
//     are left alone. No Content-Length is added.
//
// Programs get the same From_ line and message on standard input, without the
// quoting and without the trailing empty line (sendmail's prog mailer has no
// E flag); /file targets get exactly the mbox form above, as sendmail writes it.
//
// # Locking and atomicity
//
// A mailbox is locked the way mutt, mailx, Dovecot and procmail expect: a
// dot-lock <mailbox>.lock created with O_EXCL (a lock older than
// Options.StaleLockAge is taken to be left by a crashed writer and removed),
// then an fcntl write lock on the whole mailbox. posthorn takes the fcntl
// lock as an open-file-description lock (F_OFD_SETLK): it conflicts with the
// classic POSIX locks of other programs and, unlike them, also between two
// deliveries inside one daemon process. Both waits are bounded
// (Options.LockTimeout); a mailbox still locked then is a temporary failure.
//
// While both locks are held the message is appended and fsynced. If anything
// fails (a write, the disk filling up, a quota, fsync) the mailbox is
// truncated back to its size before the append, so it never holds half a
// message, and the failure is temporary (4xx; 75 for mail.local).
//
// A deliverer killed in the middle (SIGKILL, the OOM killer) cannot roll
// back, so the dot-lock doubles as its record: it names the writer's pid,
// boot and pid namespace and, before the first byte is appended, the
// mailbox's inode and size. The next deliverer that finds the lock of a
// posthorn process that no longer exists takes it over at once (instead
// of waiting StaleLockAge) and truncates the mailbox back to the recorded
// size; see deadlock.go for the rules that keep this to our own locks.
//
// Concurrent deliveries of one process to one mailbox are a group commit:
// while one holds the locks, the others wait in the process, and the next
// of them appends all that waited (up to 32) under one dot-lock and one
// fcntl lock, followed by one fsync. Each message is still all or nothing
// (a failed one is cut off again, the others stay), none is reported
// delivered before the fsync that covers it, and a failed fsync cuts the
// mailbox back to its size before the batch and fails every message in it.
//
// # Safety of the spool
//
// Mailboxes are opened by root with O_NOFOLLOW|O_NONBLOCK, and the checks are
// made on the open descriptor, so nothing can be swapped in between check
// and use: it must be a regular file, with one link, owned by the user. A
// symlink, a hard link, a FIFO or device, or a mailbox owned by someone else
// is refused as a temporary failure and logged (the mail stays queued while
// the administrator looks). A missing mailbox is created with
// O_CREAT|O_EXCL, mode 0600, and fchown'ed to the user and the user's group.
// After locking, the path is checked to still name the locked file (a reader
// that rewrote the mailbox by renaming would otherwise leave us appending to
// a file nobody reads).
//
// A /file target gets the same checks (without the ownership rule) and also
// must not be executable, but an unsafe one fails permanently, in the words
// of sendmail's *file* mailer: "554 5.3.0 cannot open /home/u/out: Symbolic
// links not allowed" (also "Hard links not allowed", "Regular files only",
// "Executable files not allowed"), so that the sender gets a DSN.
//
// # Privileges
//
// Go's setuid changes every thread of the process, so the daemon never
// changes its own identity. Mailboxes are written by the daemon itself, as
// above; the write and fsync run on a throw-away thread whose filesystem
// uid is the user's and which lacks CAP_SYS_RESOURCE, so the user's disk
// quota and the filesystem's root reserve apply as they do for mail.local. Programs run as a child process with the credentials of the user
// they belong to (os/exec with SysProcAttr.Credential). File deliveries as
// another user are made by re-executing the posthorn binary in a hidden
// child mode (ChildFlag, RunChild) with that user's credentials, so the
// kernel's permission checks apply to the user, not to root. Targets from a
// ~/.forward run as its owner, targets from the aliases file as
// Options.DefaultUser. When posthorn does not run as root (development), all
// of this runs as the current user and the ownership checks accept it.
package deliver
