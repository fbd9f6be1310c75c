package smtpd_test

import (
	"bytes"
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/smtpd/smtpdtest"
)

var reAccepted = regexp.MustCompile(`(?m)^250 2\.0\.0 (\S+) Message accepted for delivery\r$`)

// FuzzSession runs whole -bs sessions on random input. The server must
// not panic, and the backend must hold exactly the messages the client
// was told were accepted: nothing half-written, nothing lost.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"EHLO c\r\nMAIL FROM:<a@b> SIZE=10\r\nRCPT TO:<alice>\r\nRCPT TO:<bob> NOTIFY=NEVER\r\nDATA\r\n..dot\r\n.\r\n",
		"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\nbare\nlf\r\n.\r\n",
		"EHLO c\r\nVRFY alice\r\nEXPN staff\r\nHELP DSN\r\nETRN x\r\nVERB\r\nRSET\r\nNOOP\r\n",
		"GET / HTTP/1.0\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		be := smtpdtest.Reference()
		cfg := referenceConfig(t, be, nil)
		cfg.MaxMessageSize = 200
		cfg.Timeouts.Command = time.Second
		srv, err := smtpd.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		_ = srv.ServeStdio(context.Background(), bytes.NewReader(input), &out, "root")
		acc := reAccepted.FindAllStringSubmatch(out.String(), -1)
		stored := be.Stored()
		if len(acc) != len(stored) {
			t.Fatalf("%d accepted replies, %d messages stored\n%s", len(acc), len(stored), out.String())
		}
		for i, m := range stored {
			if m.Env.ID != acc[i][1] {
				t.Fatalf("accepted %s, stored %s", acc[i][1], m.Env.ID)
			}
			if len(m.Data) > 0 && m.Data[len(m.Data)-1] != '\n' {
				t.Fatalf("stored message does not end with a line end: %q", m.Data)
			}
		}
	})
}
