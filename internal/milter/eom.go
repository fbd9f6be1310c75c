package milter

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"time"

	dmilter "github.com/d--j/go-milter"
)

// Result is the outcome of end of message.
type Result struct {
	Verdict
	// Mods are every filter's modifications in order; EndOfMessage has
	// already applied the envelope and header ones to the Message.
	Mods []Mod
	// Body, when not nil, replaces the message body (LF line ends).
	Body []byte
	// Quarantine is the reason a filter gave to hold the message ("" for
	// none): the job is queued with it and not delivered.
	Quarantine string
}

// chunkSize is the largest body packet (the protocol's 64 KiB).
const chunkSize = 64 << 10

// EndOfMessage runs the message through every filter in order, as
// sendmail's milter_data: each filter gets the header fields, the end of
// header, the body in chunks and the end of message, and its
// modifications are made before the next filter sees the message, so a
// filter signs what an earlier one changed. body opens the body as
// received (LF line ends; it is sent with CRLF); it is opened once per
// filter that wants it. A reject, tempfail or discard ends the chain.
func (s *Session) EndOfMessage(m *Message, body func() (io.ReadCloser, error)) Result {
	var res Result
	ended := map[*filterConn]bool{}
	defer func() {
		// Filters that did not see this end of message (no recipient,
		// accepted earlier, or after the one that decided) are reset for
		// the next transaction.
		for _, fc := range s.filters {
			if fc.s != nil && !ended[fc] && fc.state != stAccepted {
				if err := fc.s.Abort(nil); err != nil {
					s.toError(fc)
				}
			}
			if fc.state == stMsgDone {
				fc.state = stReady
			}
		}
		s.inTx = false
	}()
	for _, fc := range s.filters {
		switch fc.state {
		case stError:
			if v := errorVerdict(fc); v.Action != ActContinue {
				res.Verdict = v
				s.logData(res.Verdict)
				return res
			}
			continue
		case stAccepted, stMsgDone:
			continue
		}
		if fc.rcpts == 0 {
			continue
		}
		fc.ended = false
		mods, act, err := s.message(fc, m, &res, body)
		ended[fc] = fc.ended
		if err != nil {
			s.chain.log.Errf(s.id, "Milter (%s): %v", fc.f.Name, err)
			s.toError(fc)
			if v := errorVerdict(fc); v.Action != ActContinue {
				res.Verdict = v
				s.logData(res.Verdict)
				return res
			}
			continue
		}
		if v, done := s.fold(fc, act, true); done {
			res.Verdict = v
			s.logData(v)
			return res
		}
		s.modify(fc, m, &res, mods)
		if act != nil && act.Type == dmilter.ActionAccept {
			s.logf(10, "Milter accept: message")
		}
	}
	return res
}

// message sends one filter the message and reads its end-of-message answer.
func (s *Session) message(fc *filterConn, m *Message, res *Result, body func() (io.ReadCloser, error)) ([]dmilter.ModifyAction, *dmilter.Action, error) {
	lead := fc.s.ProtocolOption(dmilter.OptHeaderLeadingSpace)
	for _, h := range m.Headers {
		act, err := fc.s.HeaderField(h.Name, wireValue(h.Value, lead), nil)
		if err != nil {
			return nil, nil, err
		}
		if act.Type != dmilter.ActionContinue {
			return nil, act, nil
		}
		if fc.s.Skip() {
			break
		}
	}
	act, err := fc.s.HeaderEnd()
	if err != nil || act.Type != dmilter.ActionContinue {
		return nil, act, err
	}
	act, err = s.sendBody(fc, res, body)
	if err != nil || (act != nil && act.Type != dmilter.ActionContinue) {
		return nil, act, err
	}
	if d := fc.f.Timeouts.EOM; d > 0 {
		fc.conn.limit = time.Now().Add(d)
		defer func() { fc.conn.limit = time.Time{} }()
	}
	mods, act, err := fc.s.End()
	fc.ended = err == nil
	return mods, act, err
}

// sendBody sends the current body (a replacement from an earlier filter,
// else the original) with CRLF line ends.
func (s *Session) sendBody(fc *filterConn, res *Result, body func() (io.ReadCloser, error)) (*dmilter.Action, error) {
	if fc.s.ProtocolOption(dmilter.OptNoBody) {
		return nil, nil
	}
	var r io.Reader
	if res.Body != nil {
		r = bytes.NewReader(res.Body)
	} else {
		rc, err := body()
		if err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		defer rc.Close()
		r = rc
	}
	// small buffers: most bodies are a few KiB; buf grows to a chunk
	br := bufio.NewReaderSize(r, 4096)
	buf := make([]byte, 0, 4096)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if line[len(line)-1] == '\n' && (len(line) < 2 || line[len(line)-2] != '\r') {
				line = line[:len(line)-1]
				if len(buf)+len(line)+2 > chunkSize {
					if act, err := s.chunk(fc, &buf); err != nil || act.Type != dmilter.ActionContinue {
						return act, err
					}
				}
				buf = append(buf, line...)
				buf = append(buf, '\r', '\n')
			} else {
				if len(buf)+len(line) > chunkSize {
					if act, err := s.chunk(fc, &buf); err != nil || act.Type != dmilter.ActionContinue {
						return act, err
					}
				}
				buf = append(buf, line...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		if fc.s.Skip() {
			return nil, nil
		}
	}
	if len(buf) > 0 {
		return s.chunk(fc, &buf)
	}
	return nil, nil
}

func (s *Session) chunk(fc *filterConn, buf *[]byte) (*dmilter.Action, error) {
	act, err := fc.s.BodyChunk(*buf)
	*buf = (*buf)[:0]
	return act, err
}

// modify makes one filter's modifications and logs them as sendmail.
func (s *Session) modify(fc *filterConn, m *Message, res *Result, acts []dmilter.ModifyAction) {
	lead := fc.s != nil && fc.s.ProtocolOption(dmilter.OptHeaderLeadingSpace)
	var newBody []byte
	replaced := false
	for _, a := range acts {
		mod := Mod{Filter: fc.f.Name}
		switch a.Type {
		case dmilter.ActionAddHeader:
			mod.Kind, mod.Name, mod.Value = AddHeader, a.HeaderName, queueValue(a.HeaderValue, lead)
		case dmilter.ActionInsertHeader:
			mod.Kind, mod.Name, mod.Value, mod.Index = InsertHeader, a.HeaderName, queueValue(a.HeaderValue, lead), int(a.HeaderIndex)
		case dmilter.ActionChangeHeader:
			mod.Kind, mod.Name, mod.Value, mod.Index = ChangeHeader, a.HeaderName, queueValue(a.HeaderValue, lead), int(a.HeaderIndex)
		case dmilter.ActionAddRcpt:
			mod.Kind, mod.Addr, mod.Args = AddRcpt, a.Rcpt, a.RcptArgs
		case dmilter.ActionDelRcpt:
			mod.Kind, mod.Addr = DelRcpt, a.Rcpt
		case dmilter.ActionChangeFrom:
			mod.Kind, mod.Addr, mod.Args = ChangeFrom, a.From, a.FromArgs
		case dmilter.ActionReplaceBody:
			mod.Kind = ReplaceBody
			newBody = append(newBody, a.Body...)
			replaced = true
		case dmilter.ActionQuarantine:
			mod.Kind, mod.Reason = Quarantine, a.Reason
			res.Quarantine = a.Reason
			s.logf(3, "Milter: data, quarantine=%s", a.Reason)
		default:
			continue
		}
		res.Mods = append(res.Mods, mod)
		if line := applyOne(m, mod); line != "" {
			s.logf(8, "%s", line)
		}
	}
	if replaced {
		res.Body = bytes.ReplaceAll(newBody, []byte("\r\n"), []byte("\n"))
		s.logf(8, "Milter message: body replaced")
	}
}

// logData writes srvrsmtp.c's lines for the end-of-message verdict.
func (s *Session) logData(v Verdict) {
	switch v.Action {
	case ActReject, ActTempFail:
		s.logf(3, "Milter: data, reject=%s", v.Reply.Error())
	case ActDiscard:
		s.logf(3, "Milter: data, discard")
	}
}
