package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/internal/cli"
)

func repoSources(t *testing.T) sources {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	options, err := os.ReadFile("../../man/options.txt")
	if err != nil {
		t.Fatal(err)
	}
	return sources{version: "9.9.9", readme: string(readme), options: string(options)}
}

func expandPage(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../man", name))
	if err != nil {
		t.Fatal(err)
	}
	out, err := expand(string(b), repoSources(t))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

func TestMarkdownToScdoc(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"paragraph joined, code bold, markup escaped",
			"Run `sendmail -bp`\nas root_user, *not* a \\| bar.\n",
			"Run *sendmail -bp* as root\\_user, \\*not\\* a | bar.\n"},
		{"table row: term, description, status unless it works",
			"| flag | meaning | status |\n| --- | --- | --- |\n| `-bd` | daemon | works |\n| `-h n` | hop count | parsed, not used |\n| `a\\|b` | pipe | |\n",
			"*-bd*\n\tDaemon.\n\n*-h n*\n\tHop count. Status: parsed, not used.\n\n*a|b*\n\tPipe.\n"},
		{"code block and list",
			"```sh\nmake deb\n```\n- one\n  more\n- two\n",
			"```\n  make deb\n```\n\n- one more\n- two\n"},
		{"backslash before n stays literal", "`a\\n`", "*a\\\\n*\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := markdownToScdoc(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"### sub\n", "| a | b |\n| c | d |\n", ".starts with a dot\n", "| a | b |\n| - | - |\n| 1 |\n"} {
		if _, err := markdownToScdoc(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// Every flag letter and mode the command line accepts is in the README's
// table, which is sendmail(8)'s COMMAND LINE section, so a flag added
// without documentation fails here.
func TestEveryFlagAndModeDocumented(t *testing.T) {
	section, err := readmeSection(repoSources(t).readme, "Command line")
	if err != nil {
		t.Fatal(err)
	}
	var terms []string
	for _, l := range strings.Split(section, "\n") {
		if strings.HasPrefix(l, "| ") {
			terms = append(terms, tableCells(l)[0])
		}
	}
	documented := strings.Join(terms, " ")
	flagRE := regexp.MustCompile("(?:^|[\\s`/(,])(-[A-Za-z0-9][A-Za-z0-9]?)")
	have := map[string]bool{}
	for _, m := range flagRE.FindAllStringSubmatch(documented, -1) {
		have[m[1]] = true
		have[m[1][:2]] = true
	}
	nflags := 0
	for c := byte('0'); c <= 'z'; c++ {
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			continue
		}
		_, err := cli.Parse([]string{"sendmail", "-" + string(c), "x", "rcpt"})
		if err != nil && strings.Contains(err.Error(), "illegal option") {
			continue
		}
		nflags++
		if !have["-"+string(c)] {
			t.Errorf("flag -%c is accepted but not in the README's command-line table", c)
		}
		if c != 'b' {
			continue
		}
		for m := byte('A'); m <= 'z'; m++ {
			if _, err := cli.Parse([]string{"sendmail", "-b" + string(m), "rcpt"}); err != nil {
				continue
			}
			if !have["-b"+string(m)] {
				t.Errorf("mode -b%c is accepted but not in the README's command-line table", m)
			}
		}
	}
	if nflags < 30 {
		t.Errorf("only %d flags found: the probe is broken", nflags)
	}
}

func TestSendmail8CarriesTheREADME(t *testing.T) {
	page := expandPage(t, "sendmail.8.scd")
	for _, want := range []string{`sendmail(8) "posthorn 9.9.9"`, "# COMMAND LINE\n\nposthorn parses", "*-bd*\n\tDaemon", "*-bs*\n\t", "SIGHUP re-reads"} {
		if !strings.Contains(page, want) {
			t.Errorf("sendmail.8 lacks %q", want)
		}
	}
	if strings.Contains(page, "@README") {
		t.Error("a directive was left in the page")
	}
}

func TestOptionsPageFollowsConf(t *testing.T) {
	page := expandPage(t, "sendmail.cf.5.scd")
	for _, o := range conf.HonouredOptions() {
		if !strings.Contains(page, "*"+escape(o.Name)+"*") {
			t.Errorf("sendmail.cf.5 does not list %s", o.Name)
		}
	}
	for _, want := range []string{
		"*QueueDirectory* (*OQ*)\n",
		"\tDefault: */var/spool/mqueue*.\n",
		"Defaults: queuewarn *4h*, queuereturn *5d*.",
		"Default: */var/mail*. A posthorn option",
		"AliasWait, AllowBogusHELO,",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("sendmail.cf.5 lacks %q", want)
		}
	}
}

func TestOptionDocsMustMatchTheTable(t *testing.T) {
	honoured := []conf.OptionDoc{{Name: "A", Default: "1"}, {Name: "B"}}
	for _, tc := range []struct{ src, err string }{
		{"A\n\tdoc\n", "no entry for B"},
		{"A B C\n\tdoc\n", "C is not an option"},
		{"A\n\tdoc\nA B\n\tdoc\n", "A documented twice"},
		{"A B\n", "has no description"},
		{"\tdoc\n", "description before"},
	} {
		entries, err := parseOptionDocs(tc.src)
		if err == nil {
			_, err = renderOptions(entries, honoured)
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: error %v, want %q", tc.src, err, tc.err)
		}
	}
	entries, _ := parseOptionDocs("## Group\n\nA\n\tabout a\nB\n\tabout b\n")
	got, err := renderOptions(entries, honoured)
	want := "## Group\n\n*A*\n\tabout a\n\tDefault: *1*.\n\n*B*\n\tabout b\n\tNot set by default.\n\n"
	if err != nil || got != want {
		t.Errorf("got %q, %v\nwant %q", got, err, want)
	}
}

// The rendered pages pass the check lintian makes (man --warnings), and
// name the version they were built for.
func TestRenderedPagesAreClean(t *testing.T) {
	for _, tool := range []string{"scdoc", "man"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	pages, _ := filepath.Glob("../../man/*.scd")
	if len(pages) < 6 {
		t.Fatalf("pages: %v", pages)
	}
	src := repoSources(t)
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		text, err := expand(string(b), src)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		roff, err := render([]byte(text))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		f := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(p), ".scd"))
		if err := os.WriteFile(f, roff, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", f)
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "MANWIDTH=80")
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = nil, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("%s: man --warnings: %v %s", p, err, stderr.String())
		}
		if !bytes.Contains(roff, []byte(fmt.Sprintf("posthorn %s", src.version))) {
			t.Errorf("%s: no version in the page", p)
		}
	}
}
