// Package queue implements sendmail 8's mail queue: the qf/df spool files
// (format version 8), queue IDs, durable enqueueing with group commit, job
// locks, the mailq listing, an in-memory index for queue runners and the
// retry schedule. A queue written by sendmail 8.13–8.18 is read, listed and
// rewritten by this package, and sendmail reads what this package writes.
//
// # Files
//
// A queue directory holds, per job with queue ID <ID>:
//
//	qf<ID>  control file: envelope, recipients, headers (described below)
//	df<ID>  data file: the message body only, LF line ends, no headers
//	tf<ID>  a control file being written; renamed to qf when complete
//	Qf<ID>  a control file that could not be read ("lost"), kept for the admin
//	xf<ID>  a delivery transcript (written by the runner, not this package)
//
// When the directory has subdirectories named qf, df or xf, those files go
// there instead (sendmail's layout for big queues). QueueDirectory may be a
// glob such as /var/spool/mqueue/q*: each match is one queue directory.
// Files are created mode 0600, or 0640 with group smmsp when that group
// exists. A qf is always written as a tf first and renamed, so a qf is never
// seen half-written.
//
//	.spare/<inode>  an empty spare file, for reuse as a tf or df (below)
//
// # Spare files
//
// The files of finished jobs are recycled instead of unlinked, because on
// a journal-less ext4 allocating an inode after many deletions costs up to
// a millisecond of CPU (the allocator reads inode tables looking for one
// not deleted recently). Each directory holding qf files, and a separate
// df directory, has a pool: the subdirectory .spare, holding empty regular
// files named by their inode number. sendmail and this package only look
// at names of the form <letter>f<ID>, so mailq, queue runs and a real
// sendmail sharing the directory never see the pool.
//
//   - Removing a job (Locked.Remove, an aborted or orphaned job) renames
//     the qf into the pool (the job is gone in that one step, as with
//     unlink); then the df, which nothing uses any more, is renamed into
//     the pool. A file of up to 32 KiB keeps its contents there, so that
//     the next job overwrites its blocks instead of the file system
//     freeing them (a discard on a discard-mounted file system) and
//     allocating others; a longer one is emptied on the way in (under
//     the job's lock for a qf), so a pool holds at most MaxSpares × 32
//     KiB. A reader must not keep a removed job's files open: the inode
//     will hold another message. So the df is read only through
//     Locked.OpenData, whose Data is closed (after the reads in
//     progress) by Remove, Unlock and Lose, before anyone can reuse it. When the pool holds Options.MaxSpares
//     files (default 4096), or a file has other links, files are unlinked
//     as sendmail does.
//   - A new tf (Begin, BeginID, a rewrite) and a new df are a spare
//     renamed to their name with renameat2(RENAME_NOREPLACE), so an
//     existing name is never replaced; its mode and group are set as for
//     new files. It is written from the start and, when its old contents
//     were longer, cut to the new length before it is synced (and before
//     a mail filter reads the df), so no byte of an old job is ever part
//     of a new one. An empty pool means a new file, as before.
//   - Several processes may share a pool (the daemon and a queue run from
//     cron). A file is moved in or out only under flock(LOCK_EX), and
//     taken by open, lock, rename: a spare found locked, or gone at the
//     rename (ENOENT), is skipped. The in-memory list of a pool is only a
//     hint; Open reads the pool once, and an empty pool is read again at
//     most every 30 seconds.
//   - A spare with more than one link is never used (after a crash, fsck
//     may have made a spare and a queue file two names of one inode), nor
//     one owned by another user (a queue shared by several users).
//   - Durability is unchanged: before a job is acknowledged, the pools it
//     took files from are durable without those names too (syncfs covers
//     them; the per-file sync modes fsync the pool before renaming the tf),
//     so that no crash leaves one inode named both as a job and a spare.
//   - Open recycles an unlocked tf (a crash between taking a spare and
//     committing) and orphaned df files, as it used to remove them.
//
// # Control file (qf) lines
//
// Each line starts with a letter saying what it holds; a line starting with
// a space or a TAB continues the previous line (only headers use this). The
// lines appear in this order when sendmail or this package writes them:
//
//	V8                      format version (must be first; >8 is refused)
//	T<secs>                 creation time, seconds since the epoch
//	K<secs>                 time of the last delivery attempt, 0 = never
//	N<n>                    number of delivery attempts so far
//	P<n>                    priority, lower runs first (see InitialPriority)
//	d<dir>                  directory of the df when it is not the qf's
//	I<maj>/<min>/<inode>    device and inode of the df (written on rewrites)
//	B<type>                 body type: 7BIT, 8BITMIME
//	q<reason>               quarantine reason
//	M<text>                 status message of the last attempt (shown by mailq)
//	F<flags>                w warning sent, r is a DSN, 8 8-bit body, b delete
//	                        Bcc, d RET= given, n RET=HDRS, s envelope split,
//	                        e SMTPUTF8
//	$<m><value>             a persistent macro: $_ client, $r protocol, $s HELO
//	                        name, ${daemon_flags} (long names in braces)
//	S<sender>               envelope sender as given (<a@b>, root, <>)
//	Z<envid>                DSN ENVID
//	A<auth>                 AUTH= parameter
//	!<c> <secs>             DELIVERBY mode and time
//
// then, for every recipient still to be delivered, in this order:
//
//	M<text>                 status message for this recipient (optional)
//	C<user>:<uid>:<gid>:<alias>  controlling user (C:<alias> for uid 0, C alone
//	                        resets); written only when it changes and applying
//	                        to all following recipients
//	Q<orcpt>                DSN ORCPT (e.g. rfc822;a@b)
//	r<final>                DSN Final-Recipient (e.g. RFC822; a@b)
//	R<flags>:<address>      the recipient; flags P primary, N NOTIFY given,
//	                        S/F/D notify on success/failure/delay, A from an
//	                        alias, B internal Bcc
//
// then the headers and the terminator:
//
//	H?<cond>?<Name>:<value> a header; <cond> is empty or mailer flags (P for
//	                        Return-Path, D Date, F From, M Message-Id, x
//	                        Full-Name) or a macro ($j, ${name}) the header
//	                        depends on; the value keeps its leading space;
//	                        unexpanded macros are byte 0x81 + letter
//	                        (Return-Path: <\x81g>); continuation lines start
//	                        with a TAB
//	.                       end of file; nothing may follow
//
// Lines with other letters (obsolete D, E, L, X, Y, G, or future ones) are
// kept as they are and written back, where sendmail would reject the file.
// A file that cannot be parsed (a line after ".", no ".", a bad number, a
// version above 8) is renamed to Qf<ID>, logged and skipped, never fatal.
//
// # Queue IDs
//
// An ID is six characters of UTC time from the alphabet 0-9A-Za-z (year
// since 1900 mod 60, month 0-11, day, hour, minute, second), two characters
// of a per-process sequence in base 60 (0-9A-Za-x) starting at a random
// offset, and the process ID as %06d: 6AP4T98X005913. See EncodeID and
// IDGen.
//
// # Durability and locks
//
// Enqueue writes the df, the tf, makes both durable, renames the tf to qf
// and makes the rename durable before it returns (see Store.Begin). Jobs are
// locked with flock(2) on the open qf, as sendmail does on Linux: a queue
// runner holds LOCK_EX while it works on a job, mailq probes with LOCK_SH
// and shows a locked job with "*". A qf rewritten after an attempt is
// written as a locked tf and renamed over the qf, so the lock is never
// released in between.
//
// # Using the store (for queue runners and entry points)
//
//	s, _ := queue.Open(queue.Options{Dirs: []string{"/var/spool/mqueue"}})
//	tx, _ := s.Begin()          // at MAIL FROM: reserves tx.ID()
//	io.Copy(tx, body)           // DATA: the body goes to the df
//	err := tx.Commit(job)       // durable when it returns: now say 250
//	l, err := tx.CommitLocked(job) // or keep it locked for delivery at once
//
//	x, lost, _ := s.LoadIndex() // at start; then Put/Delete as jobs change
//	for _, e := range x.Select(filter, sched, now) {
//		l, err := s.Lock(e.Dir, e.ID) // ErrLocked / ErrNotFound: skip
//		j := l.Job()
//		j.Priority = queue.RunPriority(j.Priority)
//		... deliver, drop finished recipients, set K, N, M, F ...
//		l.Rewrite(j) or l.Remove()
//	}
//	s.List(os.Stdout, queue.ListOptions{Verbose: v}) // mailq
package queue
