package queue

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestSpaceFits(t *testing.T) {
	sp := Space{Avail: 1000, BlockSize: 4096}
	tests := []struct {
		size, min int64
		want      bool
	}{
		{0, 0, true},
		{0, 1000, true},
		{0, 1001, false},
		{4096 * 900, 100, true},    // 900 + 100 blocks
		{4096*900 + 1, 100, false}, // a partial block counts whole
		{4096 * 1000, 0, true},     // no reserve
		{4096*1000 + 1, 0, false},  //
		{99999999999, 100, false},  // 01-smtp-size-unlimited's SIZE=
		{-5, 0, true},              // no size known
	}
	for _, tt := range tests {
		if got := sp.Fits(tt.size, tt.min); got != tt.want {
			t.Errorf("Fits(%d, %d) = %v, want %v", tt.size, tt.min, got, tt.want)
		}
	}
}

func TestFreeSpace(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sp, err := s.FreeSpace()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	// the same file system, seen at nearly the same moment
	if sp.Dir != dir || sp.BlockSize != st.Frsize || sp.Avail <= 0 || abs(sp.Avail-int64(st.Bavail)) > 1<<16 {
		t.Errorf("FreeSpace = %+v, statfs bavail %d frsize %d", sp, st.Bavail, st.Frsize)
	}
	if !sp.Fits(0, 1) || sp.Fits(sp.Avail*sp.BlockSize+1, 0) {
		t.Errorf("Fits against %+v", sp)
	}
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}
