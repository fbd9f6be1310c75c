package accept

import (
	"io"
	"os"

	"github.com/posthorn/posthorn/queue"
)

// The mail filters (milters) run between the end of the message and
// Commit, as sendmail's do between collect() and queueup(): they read the
// header and body as received and may change both before the queue files
// are written.

// FilterHeaders returns the message's own headers once the whole message
// has been written (the header block is closed if it never ended).
func (m *Message) FilterHeaders() []queue.Header {
	if !m.inBody {
		m.finishHeader(m.hdr)
	}
	return m.headers
}

// SetHeaders replaces the message's own headers (a filter added, changed
// or removed some).
func (m *Message) SetHeaders(h []queue.Header) { m.headers = h }

// OpenBody opens the body written so far (LF line ends) for reading.
func (m *Message) OpenBody() (io.ReadCloser, error) {
	if err := m.txn.FlushData(); err != nil {
		return nil, writeError(err)
	}
	return os.Open(m.txn.DataPath())
}

// ReplaceBody makes body (LF line ends) the message's body.
func (m *Message) ReplaceBody(body []byte) error {
	if err := m.txn.ResetData(); err != nil {
		return writeError(err)
	}
	m.bodySize, m.pendCR = 0, false
	if err := m.emit(body); err != nil {
		return writeError(err)
	}
	return nil
}
