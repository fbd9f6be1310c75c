package conf

import (
	"sort"
	"strings"
)

// OptionDoc is one option posthorn interprets, as its manual page lists it.
// sendmail.cf(5) is generated from HonouredOptions (cmd/mangen), so the page
// says what this package's tables say.
type OptionDoc struct {
	Name     string // canonical spelling: "QueueDirectory", "Timeout.queuewarn"
	Short    byte   // the one-letter name (O<letter>, -o<letter>), 0 if none
	Default  string // the built-in default, "" when the option is unset by default
	Posthorn bool   // a posthorn addition, unknown to sendmail
}

// HonouredOptions returns the options posthorn interprets, sorted by name:
// the names in honoured, and the Timeout.<name> keywords that have a
// default (the others are parsed and stored, and nothing reads them).
func HonouredOptions() []OptionDoc {
	def := map[string]string{}
	for _, d := range defaults {
		def[d[0]] = d[1]
	}
	short := map[string]byte{}
	for c, n := range shortOptions {
		short[n] = c
	}
	var out []OptionDoc
	add := func(name string) {
		out = append(out, OptionDoc{Name: name, Short: short[name], Default: def[name], Posthorn: isPosthornOption(name)})
	}
	for name := range honoured {
		add(name)
	}
	for _, t := range timeoutNames {
		if _, ok := def["Timeout."+t]; ok {
			add("Timeout." + t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out
}

// IgnoredOptions returns, sorted, the sendmail option names posthorn accepts
// in a cf file or with -O and does not interpret (reported once as "not
// interpreted"), Timeout.<name> keywords included.
func IgnoredOptions() []string {
	known := map[string]bool{}
	for _, o := range HonouredOptions() {
		known[o.Name] = true
	}
	var out []string
	for _, n := range knownOptions {
		if !known[n] {
			out = append(out, n)
		}
	}
	for _, t := range timeoutNames {
		if !known["Timeout."+t] {
			out = append(out, "Timeout."+t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i]) < strings.ToLower(out[j]) })
	return out
}

func isPosthornOption(name string) bool {
	for _, n := range posthornOptions {
		if n == name {
			return true
		}
	}
	return false
}
