package hoststat

import (
	"reflect"
	"testing"
	"time"
)

// FuzzParse: any bytes (a status file is written by other programs and may
// be damaged) parse or fail without panicking, and what parses survives
// Format and Parse again, D and R as Format writes them.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"V0\nE111\nH0\nS75\nD4.4.1\nU1795581153\n.\n",
		"V0\nE0\nH0\nS0\nD2.0.0\nR250 2.0.0 Ok: queued as SINK1795581152\nU1795581153\n.\n",
		"V0\nS-3\nE 12abc\nU99999999999999999999\n.\n",
		"V0\nR\r\n.\n", "V1\n", "\n", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		again, err := Parse(Format(s))
		if err != nil {
			t.Fatalf("Format(%+v) does not parse: %v", s, err)
		}
		s.DSN, s.Reply = field(s.DSN), field(s.Reply)
		if s.Updated.IsZero() {
			s.Updated = time.Unix(s.Updated.Unix(), 0)
		}
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip: %+v became %+v", s, again)
		}
	})
}
