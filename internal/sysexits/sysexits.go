// Package sysexits names the exit codes of BSD's sysexits.h, which sendmail
// and every program that calls it (MUAs, cron, scripts) interpret: 75 means
// "try again later", 67 "no such user", and so on.
package sysexits

// Exit codes from sysexits.h.
const (
	OK          = 0  // EX_OK: successful termination
	Usage       = 64 // EX_USAGE: command line usage error
	DataErr     = 65 // EX_DATAERR: data format error
	NoInput     = 66 // EX_NOINPUT: cannot open input
	NoUser      = 67 // EX_NOUSER: addressee unknown
	NoHost      = 68 // EX_NOHOST: host name unknown
	Unavailable = 69 // EX_UNAVAILABLE: service unavailable
	Software    = 70 // EX_SOFTWARE: internal software error
	OSErr       = 71 // EX_OSERR: system error (e.g. can't fork)
	OSFile      = 72 // EX_OSFILE: critical OS file missing
	CantCreat   = 73 // EX_CANTCREAT: can't create (user) output file
	IOErr       = 74 // EX_IOERR: input/output error
	TempFail    = 75 // EX_TEMPFAIL: temporary failure; user is invited to retry
	Protocol    = 76 // EX_PROTOCOL: remote error in protocol
	NoPerm      = 77 // EX_NOPERM: permission denied
	Config      = 78 // EX_CONFIG: configuration error
)
