package runner

import (
	"testing"

	"github.com/posthorn/posthorn/queue"
)

// FuzzRenderHeader feeds arbitrary qf header conditions and values (a qf
// may come from any sendmail, or be damaged) to the header renderer: it
// must never panic, and every header it writes must start with its name.
func FuzzRenderHeader(f *testing.F) {
	f.Add("P", "Return-Path", " <\x81g>", "lsDFMAw5:/|@qPSXnz9m")
	f.Add("$j", "X", " \x81{daemon_flags}\x81", "mDFMuXa")
	f.Add("${", "X", "\x81{", "")
	f.Add("$", "Y", "\x81", "P")
	f.Fuzz(func(t *testing.T, cond, name, value, flags string) {
		j := &queue.Job{ID: "6AP4T98X005913", Sender: "<a@b>",
			Macros:  []queue.Macro{{Name: "{daemon_flags}", Value: "c u"}, {Name: "_", Value: "x"}},
			Headers: []queue.Header{{HasCond: true, Cond: cond, Name: name, Value: value}}}
		m := &macros{job: j, hostname: "h", sender: envelopeSender(j, "h")}
		out := renderHeader(nil, j, flags, m)
		if len(out) > 0 && string(out[:len(name)]) != name {
			t.Errorf("header %q rendered as %q", name, out)
		}
	})
}
