package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/posthorn/posthorn/internal/sysexits"
)

// addressTest is -bt: sendmail's address test mode. posthorn has no
// rewriting rules, so it answers what it can: macros ($x, ${name}) and
// classes ($=x), and says so for ruleset input.
func (a *app) addressTest() int {
	fmt.Fprintln(a.stdout, "ADDRESS TEST MODE (ruleset 3 NOT automatically invoked)")
	fmt.Fprintln(a.stdout, "Enter <ruleset> <address>")
	in := bufio.NewScanner(a.stdin)
	for {
		fmt.Fprint(a.stdout, "> ")
		if !in.Scan() {
			return sysexits.OK
		}
		line := strings.TrimSpace(in.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case line == "/quit":
			return sysexits.OK
		case strings.HasPrefix(line, "$="):
			for _, w := range a.cfg.Class(strings.Trim(line[2:], "{}")) {
				fmt.Fprintln(a.stdout, w)
			}
		case strings.HasPrefix(line, "$"):
			name := strings.Trim(line[1:], "{}")
			fmt.Fprintf(a.stdout, "%s\n", a.cfg.Macros[name])
		default:
			fmt.Fprintf(a.stdout, "posthorn has no rewriting rules; use -bv to see how an address is delivered\n")
		}
	}
}
