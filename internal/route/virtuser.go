package route

import (
	"strings"

	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/status"
)

// virtualTarget looks user@domain up as sendmail's virtusertable does:
// "user+detail@domain", "user+*@domain", "user@domain", then the
// catch-all "@domain". In the target, %1 is the user (without the
// detail), %2 the detail and %3 "+detail" ("" without one).
func (r *Router) virtualTarget(user, domain string) (key, target string, ok bool, err error) {
	base, detail, plussed := strings.Cut(user, "+")
	keys := []string{user + "@" + domain}
	if plussed {
		keys = append(keys, base+"+*@"+domain, base+"@"+domain)
	}
	keys = append(keys, "@"+domain)
	for _, k := range keys {
		v, ok, err := r.vt.Find(k)
		if err != nil {
			return k, "", false, err
		}
		if ok {
			plus := ""
			if plussed {
				plus = "+" + detail
			}
			v = strings.NewReplacer("%1", base, "%2", detail, "%3", plus).Replace(v)
			return k, v, true, nil
		}
	}
	return "", "", false, nil
}

// virtualTriple routes a virtusertable target: an error: target, a local
// user, or an address routed again (a bounded number of times). The
// address was for one of our (virtual) domains, so the relay check sees
// it as local whatever the target.
func (r *Router) virtualTriple(t Triple, key, target string, depth int) Triple {
	t.Steps = append(t.Steps, "virtusertable: "+key+" "+target)
	t.Local = true
	if spec, ok := cutPrefixFold(target, "error:"); ok {
		t.Mailer, t.User, t.Err = Error, target, ParseErrorTarget(spec)
		return t
	}
	a, err := addr.Parse(target)
	if err != nil || a.Null || a.Has(addr.Program) || a.Has(addr.File) {
		t.Mailer, t.User = Error, target
		t.Err = status.New(553, "5.3.5", "virtusertable entry %s: invalid target", key)
		return t
	}
	if depth >= maxVirtual {
		t.Mailer, t.User = Error, target
		t.Err = status.New(554, "5.4.6", "virtusertable loop (%d deep)", depth+1)
		return t
	}
	next := r.resolve(a, depth+1)
	next.Steps = append(t.Steps, next.Steps...)
	next.Tricks |= t.Tricks
	next.Local = true
	return next
}
