// Package runner delivers the jobs of a sendmail 8 queue (package queue):
// the queue run (sendmail -q, -q30m, -qI/-qR/-qS), the first delivery
// right after acceptance, retries, delay warnings, give-ups and delivery
// status notifications, logged in sendmail's format.
//
// # One attempt at a job
//
// The job is locked (flock on its qf; a job another process holds is
// skipped, so a -q from cron and a daemon never deliver one twice). Each
// R line holds a final address (aliases were expanded at acceptance); the
// Router turns it into a mailer triple, and the recipients of one mailer
// and host go to that Mailer in one call, with the header block rendered
// for that mailer: H?flags? headers only when the mailer has one of the
// flags (Return-Path needs P: local and *file*), H?$x? headers only when
// macro x is set, and the 0x81 macro bytes expanded ($g sender, $j host,
// $i queue ID, $b date, $_ $r $s from the qf's $ lines). Per recipient:
//
//	delivered        dropped from the qf; a return receipt when NOTIFY=SUCCESS
//	                 and the mailer delivered to a mailbox, file or program
//	4xx (temporary)  kept; the envelope M line says "Deferred: <reason>"
//	5xx (permanent)  dropped; named in a failure DSN to the sender
//
// Then N is incremented, K set to now and, in queue runs, P raised by
// 90000 (sendmail's RetryFactor); the qf is rewritten atomically, or
// removed with its df when nobody is left. A qf that cannot be read, or
// has no df, is renamed to Qf and logged; the run carries on.
//
// # Timeouts and reports
//
// Past Timeout.queuewarn, a job still deferred gets one delay warning (to
// the recipients with NOTIFY=DELAY or no NOTIFY) and the F line's w flag.
// Past Timeout.queuereturn, its deferred recipients fail with status 4.4.7
// and "Cannot send message for <interval>". Reports (package dsn) are
// queued in the same store as new jobs from <> with the r flag, before the
// qf forgets the recipients they name, and delivered at once. No report
// goes to <>; a failure of mail from <> goes to the postmaster once, and a
// failure of that is dropped.
//
// # Log lines (syslog, sendmail's shape)
//
//	<ID>: to=<rcpt>, ctladdr=<alias> (uid/gid), delay=HH:MM:SS, xdelay=HH:MM:SS,
//	      mailer=esmtp, pri=N, relay=host. [ip], dsn=4.4.1, reply=..., stat=Deferred: <reason>
//	<ID>: <new ID>: DSN: <reason>           (also "sender notify", "postmaster notify",
//	                                          "return to sender"; see dsn.LogLabel)
//
// As in sendmail's logdelivery, a to= list that would not fit the 1024-byte
// syslog buffer is split over several lines, all but the last marked
// "[more]", and stat= is shortened to 203 bytes.
//
// # Concurrency
//
// Everything delivered in the background (queue runs, the first attempt
// after acceptance in DeliveryMode=background, ETRN runs) goes through
// two lanes, one per mailer class: local (local, *file*, prog) and remote
// (every other mailer). A job with any remote recipient is a remote job
// (its local recipients are delivered first); each lane has its own bound
// (MaxQueueChildren), so local delivery never waits behind slow remote
// hosts. A job waiting for room does not hold its lock (a job handed over
// locked is unlocked and locked again when its turn comes), the jobs
// waiting are bounded (MaxWaiting; beyond, a job stays queued for the next
// run), and a job is in at most one delivery at a time however many runs
// select it. A queue run has at most MaxRunnersPerQueue jobs per lane at
// once, started in QueueSortOrder (priority; host groups the jobs of one
// next hop so that the relay client's cached connection serves them in
// turn; time; filename; random). Interactive deliveries (VERB, -odi, -v)
// run in the caller's goroutine.
//
// ETRN starts at most one run per node (a second ETRN for it is joined),
// at most MaxNodeRuns at once, the others waiting in a bounded list. A
// daemon calls Start to build an in-memory index of the queue, which
// deliveries keep current; Serve and each ETRN run rescan once to see jobs
// queued by other processes; Background and Kick never scan. Shutdown
// stops all of it and waits for the deliveries in progress, cancelling
// them (they roll back) when its context ends.
package runner
