package rfcdate

import (
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no zoneinfo:", err)
	}
	tests := []struct {
		t    time.Time
		want string
	}{
		// 02-date-format-non-utc-timezone.txt and the DSN captures.
		{time.Date(2026, 11, 25, 4, 36, 37, 0, time.UTC).In(ny), "Tue, 24 Nov 2026 23:36:37 -0500"},
		{time.Date(2026, 11, 25, 4, 30, 9, 0, time.UTC), "Wed, 25 Nov 2026 04:30:09 GMT"},
		{time.Date(2026, 11, 5, 4, 3, 9, 0, time.UTC), "Thu, 5 Nov 2026 04:03:09 GMT"},
		{time.Date(2026, 7, 1, 12, 0, 0, 0, ny), "Wed, 1 Jul 2026 12:00:00 -0400"},
		{time.Date(2026, 7, 1, 12, 0, 0, 0, time.FixedZone("IST", 5*3600+1800)), "Wed, 1 Jul 2026 12:00:00 +0530"},
		{time.Date(2026, 7, 1, 12, 0, 0, 0, time.FixedZone("X", 45*60)), "Wed, 1 Jul 2026 12:00:00 +0045"},
		{time.Date(2026, 7, 1, 12, 0, 0, 0, time.FixedZone("Y", -26*3600)), "Wed, 1 Jul 2026 12:00:00 -2359"},
	}
	for _, tt := range tests {
		if got := Format(tt.t); got != tt.want {
			t.Errorf("Format(%v) = %q, want %q", tt.t, got, tt.want)
		}
	}
}

func BenchmarkFormat(b *testing.B) {
	t := time.Date(2026, 11, 25, 4, 30, 9, 0, time.UTC)
	buf := make([]byte, 0, 64)
	for b.Loop() {
		buf = Append(buf[:0], t)
	}
}
