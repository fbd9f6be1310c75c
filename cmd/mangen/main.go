// Command mangen renders posthorn's manual pages. The sources are scdoc
// files in man/ (name.section.scd); mangen expands their directives and
// pipes the result through scdoc(1) into OUT/name.section:
//
//	@VERSION@                  the version being built (anywhere in a line)
//	@README <title>@           on a line of its own: the README section
//	                           "## <title>", converted from Markdown, so the
//	                           page says what the README says
//	@OPTIONS@                  the options posthorn interprets: names, short
//	                           names and defaults from conf's table
//	                           (conf.HonouredOptions), descriptions from
//	                           man/options.txt; any mismatch is an error
//	@IGNORED_OPTIONS@          the sendmail options accepted and ignored
//
// Usage: mangen -out DIR [-version V] [-readme README.md]
// [-options man/options.txt] [-scdoc] page.scd...
// With -scdoc the expanded sources are written instead of rendered pages.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/posthorn/posthorn/conf"
)

// sources are the files a page may draw on.
type sources struct {
	version string
	readme  string // contents
	options string // contents of options.txt
}

func main() {
	out := flag.String("out", "", "directory for the rendered pages")
	version := flag.String("version", conf.Version, "version named in the pages")
	readme := flag.String("readme", "README.md", "the README whose sections pages include")
	options := flag.String("options", "man/options.txt", "descriptions of the honoured options")
	scdocOnly := flag.Bool("scdoc", false, "write the expanded scdoc sources, not rendered pages")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: mangen -out DIR [-version V] [-readme FILE] [-options FILE] [-scdoc] page.scd...")
		os.Exit(64)
	}
	src := sources{version: *version}
	for _, f := range []struct {
		path string
		dst  *string
	}{{*readme, &src.readme}, {*options, &src.options}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			fail(err)
		}
		*f.dst = string(b)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	for _, page := range flag.Args() {
		b, err := os.ReadFile(page)
		if err != nil {
			fail(err)
		}
		text, err := expand(string(b), src)
		if err != nil {
			fail(fmt.Errorf("%s: %w", page, err))
		}
		name := strings.TrimSuffix(filepath.Base(page), ".scd")
		data := []byte(text)
		if *scdocOnly {
			name += ".scd"
		} else if data, err = render(data); err != nil {
			fail(fmt.Errorf("%s: %w", page, err))
		}
		if err := os.WriteFile(filepath.Join(*out, name), data, 0o644); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mangen:", err)
	os.Exit(1)
}

// expand replaces the directives of one page source.
func expand(page string, src sources) (string, error) {
	var out []string
	for _, l := range strings.Split(page, "\n") {
		switch {
		case strings.HasPrefix(l, "@README ") && strings.HasSuffix(l, "@"):
			body, err := readmeSection(src.readme, strings.TrimSuffix(strings.TrimPrefix(l, "@README "), "@"))
			if err != nil {
				return "", err
			}
			s, err := markdownToScdoc(body)
			if err != nil {
				return "", fmt.Errorf("README section %q: %w", l, err)
			}
			out = append(out, s)
		case l == "@OPTIONS@":
			entries, err := parseOptionDocs(src.options)
			if err != nil {
				return "", err
			}
			s, err := renderOptions(entries, conf.HonouredOptions())
			if err != nil {
				return "", err
			}
			out = append(out, s)
		case l == "@IGNORED_OPTIONS@":
			out = append(out, renderIgnored(conf.IgnoredOptions()))
		default:
			out = append(out, strings.ReplaceAll(l, "@VERSION@", src.version))
		}
	}
	return strings.Join(out, "\n"), nil
}

// render runs scdoc, which takes SOURCE_DATE_EPOCH for the page's date.
func render(scd []byte) ([]byte, error) {
	cmd := exec.Command("scdoc")
	cmd.Stdin = bytes.NewReader(scd)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("scdoc: %v: %s", err, stderr.String())
	}
	return stdout.Bytes(), nil
}
