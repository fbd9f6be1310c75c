package test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryFuzzTargetHasCorpus: issue 14 keeps the corpora that make
// fuzz grows in testdata/fuzz, beside each target, so that go test runs
// every target on more than its seeds. A new target without one fails
// here: run it (go test -run '^$' -fuzz '^FuzzX$' -fuzztime 1m ./pkg) and
// copy $(go env GOCACHE)/fuzz/<import path>/FuzzX into pkg/testdata/fuzz/.
func TestEveryFuzzTargetHasCorpus(t *testing.T) {
	target := regexp.MustCompile(`(?m)^func (Fuzz[A-Za-z0-9_]*)\(`)
	n := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "var" || d.Name() == "build" || d.Name() == "bin" || strings.HasPrefix(d.Name(), ".") && path != "..") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range target.FindAllSubmatch(src, -1) {
			n++
			dir := filepath.Join(filepath.Dir(path), "testdata", "fuzz", string(m[1]))
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) == 0 {
				t.Errorf("%s %s: no corpus in %s", path, m[1], dir)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 30 {
		t.Errorf("only %d fuzz targets found", n)
	}
}
