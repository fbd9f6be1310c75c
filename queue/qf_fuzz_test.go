package queue

import (
	"bytes"
	"os"
	"reflect"
	"testing"
)

// FuzzParse checks that the qf reader never panics, and that whatever it
// accepts is written back in a form that reads the same and is stable.
func FuzzParse(f *testing.F) {
	for _, name := range referenceQF(f) {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("V0\nRabc:def\n.\n"))
	f.Add([]byte("V8\nSa\nMm\nC\nQq\nrr\nXx\n\ty\nR:b\nH?$j?X:\x81\n.\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := Parse("x", data)
		if err != nil {
			return
		}
		out := Marshal(j)
		k, err := Parse("x", out)
		if err != nil {
			t.Fatalf("rewritten file does not parse: %v\n%q\n%q", err, data, out)
		}
		if !bytes.Equal(Marshal(k), out) {
			t.Fatalf("writer not stable:\n%q\n%q", out, Marshal(k))
		}
		normalize(j)
		normalize(k)
		if !reflect.DeepEqual(j, k) {
			t.Fatalf("model changed by round trip:\n%+v\n%+v", j, k)
		}
	})
}

// normalize clears what a rewrite legitimately changes: the record of which
// lines were present, version 0 (written as 8), and empty values that are
// not written at all.
func normalize(j *Job) {
	j.seen = 0
	if j.Version == 0 {
		j.Version = Version
	}
	for i := range j.Recipients {
		if len(j.Recipients[i].Extra) == 0 {
			j.Recipients[i].Extra = nil
		}
	}
	if len(j.Extra) == 0 {
		j.Extra = nil
	}
	if len(j.Trailer) == 0 {
		j.Trailer = nil
	}
}
