package hoststat

import (
	"os"
	"testing"
	"time"
)

// BenchmarkLookup compares a lookup from memory, through a directory whose
// file did not change (a stat), and reading the file every time (what
// Lookup would cost without the stat check).
func BenchmarkLookup(b *testing.B) {
	s := Status{Host: "mx.remote.example", Errno: 111, Exit: 75, DSN: "4.4.1"}
	b.Run("memory", func(b *testing.B) {
		tab := Open("", time.Hour, nil)
		tab.Record(s)
		for b.Loop() {
			tab.Lookup(s.Host)
		}
	})
	b.Run("directory", func(b *testing.B) {
		tab := Open(b.TempDir(), time.Hour, nil)
		tab.Record(s)
		for b.Loop() {
			tab.Lookup(s.Host)
		}
	})
	b.Run("read-every-time", func(b *testing.B) {
		dir := b.TempDir()
		tab := Open(dir, time.Hour, nil)
		tab.Record(s)
		path, _ := Path(dir, s.Host)
		for b.Loop() {
			data, _ := os.ReadFile(path)
			Parse(data)
		}
	})
}

func BenchmarkRecord(b *testing.B) {
	tab := Open(b.TempDir(), time.Hour, nil)
	s := Status{Host: "mx.remote.example", Errno: 111, Exit: 75, DSN: "4.4.1"}
	for b.Loop() {
		tab.Record(s)
	}
}
