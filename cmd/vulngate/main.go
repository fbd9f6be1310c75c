// Command vulngate reads govulncheck's JSON output (-format json) on
// standard input and decides whether the build fails: `make vuln` pipes
// govulncheck into it.
//
// A vulnerability that posthorn's code reaches (a finding whose trace names
// a function) in a module it requires fails the build: it is fixed by
// requiring the fixed version. One in the Go standard library is printed
// as a warning with the Go release that fixes it, and does not fail the
// build: the toolchain is the machine's, not the module's (see README, CI).
// Vulnerabilities in code that is imported but not called are counted.
//
// Exit status: 0 when nothing fails, 1 when something does, 2 when the
// input cannot be read.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// message is one object of govulncheck's JSON stream (only the parts read).
type message struct {
	OSV *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
	Finding *struct {
		OSV          string `json:"osv"`
		FixedVersion string `json:"fixed_version"`
		Trace        []struct {
			Module   string `json:"module"`
			Version  string `json:"version"`
			Package  string `json:"package"`
			Function string `json:"function"`
		} `json:"trace"`
	} `json:"finding"`
}

// reached is a vulnerability the code calls.
type reached struct {
	id, module, version, fixed string
	symbols                    map[string]bool
}

func main() {
	code, err := gate(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulngate:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func gate(in io.Reader, out io.Writer) (int, error) {
	dec := json.NewDecoder(in)
	summaries := map[string]string{}
	found := map[string]*reached{}
	imported := map[string]bool{}
	messages := 0
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("reading govulncheck's output: %w", err)
		}
		messages++
		if m.OSV != nil {
			summaries[m.OSV.ID] = m.OSV.Summary
		}
		f := m.Finding
		if f == nil || len(f.Trace) == 0 {
			continue
		}
		top := f.Trace[0]
		if top.Function == "" {
			imported[f.OSV] = true
			continue
		}
		r := found[f.OSV]
		if r == nil {
			r = &reached{id: f.OSV, module: top.Module, version: top.Version, fixed: f.FixedVersion, symbols: map[string]bool{}}
			found[f.OSV] = r
		}
		r.symbols[top.Package+"."+top.Function] = true
	}
	if messages == 0 {
		return 0, errors.New("no output from govulncheck")
	}
	ids := make([]string, 0, len(found))
	for id := range found {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	failed := 0
	for _, id := range ids {
		r := found[id]
		delete(imported, id)
		syms := make([]string, 0, len(r.symbols))
		for s := range r.symbols {
			syms = append(syms, s)
		}
		sort.Strings(syms)
		what := "FAIL"
		fix := "require " + r.module + "@" + r.fixed
		if r.module == "stdlib" || r.module == "toolchain" {
			what, fix = "warning", "build with Go "+strings.TrimPrefix(r.fixed, "v")+" or later"
		} else {
			failed++
		}
		fmt.Fprintf(out, "%s: %s in %s@%s, reached through %s: %s (%s)\n", what, id, r.module, r.version, strings.Join(syms, ", "), summaries[id], fix)
	}
	fmt.Fprintf(out, "vulngate: %d vulnerabilities reached by posthorn's code (%d in required modules), %d more in code it imports but does not call\n",
		len(ids), failed, len(imported))
	if failed > 0 {
		return 1, nil
	}
	return 0, nil
}
