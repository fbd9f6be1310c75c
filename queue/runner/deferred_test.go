package runner

import (
	"testing"

	"github.com/posthorn/posthorn/internal/status"
)

// A deferral says why after "Deferred: ", except when its text is
// sendmail's bare "Deferred" (a host held by another process under
// SingleThreadDelivery): then stat=Deferred, not "Deferred: Deferred".
func TestDeferredText(t *testing.T) {
	for _, tc := range []struct {
		st   *status.Error
		want string
	}{
		{status.New(451, "4.4.1", "Connection refused by mx.example."), "Deferred: Connection refused by mx.example."},
		{status.New(451, "4.4.5", "Deferred"), "Deferred"},
	} {
		if got := deferredText(tc.st); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.st.Text, got, tc.want)
		}
	}
}
