package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// TestMessageBody: the body reaches package deliver whether the runner
// hands an io.ReaderAt (the df) or a plain reader.
func TestMessageBody(t *testing.T) {
	m := &localMailers{}
	for name, body := range map[string]io.Reader{
		"section": io.NewSectionReader(strings.NewReader("df body\n"), 0, 8),
		"plain":   io.MultiReader(strings.NewReader("df body\n")),
	} {
		msg, err := m.message(&runner.Delivery{Job: &queue.Job{ID: "Q"}, Body: body})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := make([]byte, msg.BodySize)
		if _, err := msg.Body.ReadAt(got, 0); err != nil && err != io.EOF {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, []byte("df body\n")) {
			t.Errorf("%s: body %q", name, got)
		}
	}
}

func TestErrorTarget(t *testing.T) {
	err := errorTarget("error:5.1.1:550 nosuch... User unknown")
	if err.Error() != "550 5.1.1 nosuch... User unknown" {
		t.Errorf("got %q", err)
	}
	if err := errorTarget("error:just text"); err.Error() != "550 5.0.0 just text" {
		t.Errorf("no code: %q", err)
	}
	if err := errorTarget("error:4.2.2:452 mailbox full"); err.Error() != "452 4.2.2 mailbox full" {
		t.Errorf("temporary: %q", err)
	}
}
