package runner

import (
	"strings"

	"github.com/posthorn/posthorn/internal/header"
	"github.com/posthorn/posthorn/internal/rfcdate"
	"github.com/posthorn/posthorn/queue"
)

// macroByte is sendmail's MACROEXPAND: in a qf header it stands for a
// macro to expand when the header is written out ("Return-Path: <\x81g>").
const macroByte = 0x81

// DefaultMailerFlags are the F= flags of the mailers of the Debian
// sendmail.cf in the reference (etc/sendmail.cf). Only the flags that
// header conditions test matter here: P (Return-Path), D (Date), F (From),
// M (Message-Id); none has x, so H?x?Full-Name is never written.
var defaultMailerFlags = map[string]string{
	"local":     "lsDFMAw5:/|@qPSXnz9m",
	"prog":      "lsDFMoqeu9",
	"*file*":    "lsDFMPEouq9",
	"*include*": "o",
	"smtp":      "mDFMuX",
	"esmtp":     "mDFMuXa",
	"smtp8":     "mDFMuX8",
	"dsmtp":     "mDFMuXa%",
	"relay":     "mDFMuXa8",
}

// macros resolves the one-letter and {long} macros a header may use.
type macros struct {
	job      *queue.Job
	hostname string // $j
	version  string // $v
	date     string // $b, $d: the time of this delivery
	sender   string // $g: the envelope sender, qualified
	host     string // $h
	user     string // $u
	rewrite  *header.Rewriter
}

func (m *macros) get(name string) (string, bool) {
	switch name {
	case "g", "f":
		return m.sender, true
	case "j", "w":
		return m.hostname, m.hostname != ""
	case "i":
		return m.job.ID, true
	case "b", "d", "a":
		return m.date, true
	case "v":
		return m.version, m.version != ""
	case "h":
		return m.host, m.host != ""
	case "u":
		return m.user, m.user != ""
	}
	for _, mc := range m.job.Macros {
		if mc.Name == name || mc.Name == "{"+name+"}" {
			return mc.Value, mc.Value != ""
		}
	}
	return "", false
}

// envelopeSender returns $g for a job: the stored sender with brackets
// removed and an unqualified name qualified with $j. The null sender of a
// report made here (F flag r) is MAILER-DAEMON@$j, as sendmail writes it in
// its reports' Return-Path; the null sender of a message received from
// elsewhere stays empty ("Return-Path: <>", 03-dsn-postmaster-notify-*).
func envelopeSender(j *queue.Job, hostname string) string {
	s := strings.TrimSpace(j.Sender)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	if s == "" {
		if !j.HasFlag(queue.FlagResponse) {
			return ""
		}
		s = "MAILER-DAEMON"
	}
	if !strings.Contains(s, "@") && hostname != "" {
		s += "@" + hostname
	}
	return s
}

// renderHeader writes the job's header block as one mailer sees it: a
// header with a ?flags? condition only when the mailer has one of those
// flags, one with a ?$x? condition only when the macro is set, and the
// 0x81 macro bytes expanded. Lines end in LF; no blank line follows.
//
// Addresses are rewritten as sendmail's rulesets do at delivery (package
// header): in every address field this host's own names become $j
// ("To: staff@localhost" arrives as "staff@refhost.example.org", reference
// 02-mbox-alice.txt), and for a mailer without F=l (the SMTP mailers,
// whose HdrFromSMTP and MasqSMTP rulesets qualify) an unqualified address
// also gets "@$j". A Bcc: or Resent-Bcc: field never shows its addresses:
// it is left out when the job has the b flag (the message has To: or
// Cc:), else written empty, as sendmail's putheader does.
func renderHeader(b []byte, j *queue.Job, mailerFlags string, m *macros) []byte {
	qualify := !strings.ContainsRune(mailerFlags, 'l')
	for i := range j.Headers {
		h := &j.Headers[i]
		if h.HasCond && h.Cond != "" && !condHolds(h.Cond, mailerFlags, m) {
			continue
		}
		if header.IsBcc(h.Name) {
			if !j.HasFlag(queue.FlagDelBcc) {
				b = append(b, h.Name...)
				b = append(b, ":\n"...)
			}
			continue
		}
		b = append(b, h.Name...)
		b = append(b, ':')
		if header.IsAddress(h.Name) {
			b = append(b, m.rewrite.Value(h.Name, string(expand(nil, h.Value, m)), qualify)...)
		} else {
			b = expand(b, h.Value, m)
		}
		b = append(b, '\n')
	}
	return b
}

func condHolds(cond, flags string, m *macros) bool {
	if cond[0] == '$' || cond[0] == macroByte {
		name := cond[1:]
		name = strings.TrimSuffix(strings.TrimPrefix(name, "{"), "}")
		_, ok := m.get(name)
		return ok
	}
	return strings.ContainsAny(cond, flags)
}

// expand copies v with each 0x81 macro reference replaced by its value;
// "\x81{name}" names a long macro.
func expand(b []byte, v string, m *macros) []byte {
	for {
		i := strings.IndexByte(v, macroByte)
		if i < 0 || i+1 >= len(v) {
			return append(b, v...)
		}
		b = append(b, v[:i]...)
		v = v[i+1:]
		name := v[:1]
		if v[0] == '{' {
			if k := strings.IndexByte(v, '}'); k > 0 {
				name = v[1:k]
				v = v[k+1:]
			} else {
				v = v[1:]
			}
		} else {
			v = v[1:]
		}
		val, _ := m.get(name)
		b = append(b, val...)
	}
}

// newMacros returns the macros for delivering j now.
func (r *Runner) newMacros(j *queue.Job) *macros {
	return &macros{job: j, hostname: r.cfg.Hostname, version: r.cfg.Version,
		date: rfcdate.Format(r.now()), sender: envelopeSender(j, r.cfg.Hostname),
		rewrite: &header.Rewriter{Hostname: r.cfg.Hostname, Self: r.hostNames()}}
}

// hostNames is Config.HostNames, or $j and localhost when it is not set.
func (r *Runner) hostNames() func(string) bool {
	if r.cfg.HostNames != nil {
		return r.cfg.HostNames
	}
	return header.HostNames(r.cfg.Hostname, "", nil)
}
