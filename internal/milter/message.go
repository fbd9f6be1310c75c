package milter

import (
	"fmt"
	"strings"
)

// Header is one header field as the queue file keeps it.
type Header struct {
	Name string
	// Value keeps what follows the colon: the leading space and the
	// "\n\t" of folded lines (queue.Header's form).
	Value string
	// Own marks a header this MTA added (its Received line): sendmail
	// sends it to the filters but does not count it as the message's own
	// when a filter changes "the n-th Received".
	Own bool
}

// Recipient is an envelope recipient.
type Recipient struct {
	Addr string // "<alice@example.org>"
	Args string // ESMTP arguments, "NOTIFY=SUCCESS ORCPT=rfc822;a@b", or ""
}

// Message is what the filters see of a message and may change: the
// envelope and the header. The body is a stream the caller owns; a
// filter's replacement comes back in Result.Body.
type Message struct {
	Sender     string // "<bob@example.org>", "<>"
	SenderArgs string
	Rcpts      []Recipient
	Headers    []Header
}

// ModKind is one of the end-of-message modifications.
type ModKind int

// The modifications a filter may ask for at end of message.
const (
	AddHeader ModKind = iota + 1
	InsertHeader
	ChangeHeader // an empty Value deletes
	AddRcpt
	DelRcpt
	ChangeFrom
	ReplaceBody
	Quarantine
)

// Mod is one modification, as the filter sent it.
type Mod struct {
	Kind   ModKind
	Filter string // the filter's name, for the log
	Name   string // header name
	Value  string // header value in queue form (leading space, "\n\t")
	Index  int    // ChangeHeader: n-th field of Name (1-based); InsertHeader: after the n-th field (0: first)
	Addr   string // AddRcpt, DelRcpt, ChangeFrom: "<a@b>"
	Args   string // AddRcpt, ChangeFrom: ESMTP arguments
	Reason string // Quarantine
}

// Apply makes the modifications on m, as sendmail's milter.c does:
//   - AddHeader appends a field (after the last one).
//   - InsertHeader puts it after the Index-th field the filter was sent
//     (0: before every field).
//   - ChangeHeader changes the Index-th field of that name among the
//     message's own (Own fields are not counted) and deletes it when the
//     value is empty; a change of a field that is not there adds it, a
//     deletion of one is nothing.
//   - AddRcpt appends a recipient unless it is there already; DelRcpt
//     removes every recipient with that address (case-insensitive, angle
//     brackets optional), ChangeFrom replaces the sender and its arguments.
//
// Body and quarantine changes are carried in Result, not in m.
func Apply(m *Message, mods []Mod) {
	for _, mod := range mods {
		applyOne(m, mod)
	}
}

// applyOne makes one modification and returns sendmail's log line for it
// (milter.c's wording; "" for body and quarantine, logged by the caller).
func applyOne(m *Message, mod Mod) string {
	switch mod.Kind {
	case AddHeader:
		m.Headers = append(m.Headers, Header{Name: mod.Name, Value: mod.Value})
		return fmt.Sprintf("Milter add: header: %s:%s", mod.Name, oneLine(mod.Value))
	case InsertHeader:
		i := mod.Index
		if i < 0 {
			i = 0
		}
		if i > len(m.Headers) {
			i = len(m.Headers)
		}
		m.Headers = append(m.Headers, Header{})
		copy(m.Headers[i+1:], m.Headers[i:])
		m.Headers[i] = Header{Name: mod.Name, Value: mod.Value}
		return fmt.Sprintf("Milter insert (%d): header: %s:%s", mod.Index, mod.Name, oneLine(mod.Value))
	case ChangeHeader:
		return changeHeader(m, mod)
	case AddRcpt:
		if indexRcpt(m.Rcpts, mod.Addr) < 0 {
			m.Rcpts = append(m.Rcpts, Recipient{Addr: angle(mod.Addr), Args: mod.Args})
		}
		return "Milter add: rcpt: " + mod.Addr
	case DelRcpt:
		for i := indexRcpt(m.Rcpts, mod.Addr); i >= 0; i = indexRcpt(m.Rcpts, mod.Addr) {
			m.Rcpts = append(m.Rcpts[:i], m.Rcpts[i+1:]...)
		}
		return "Milter delete: rcpt " + mod.Addr
	case ChangeFrom:
		m.Sender, m.SenderArgs = angle(mod.Addr), mod.Args
		return "Milter chgfrom: " + mod.Addr
	}
	return ""
}

func changeHeader(m *Message, mod Mod) string {
	n := mod.Index
	if n <= 0 {
		n = 1 // sendmail treats index 0 as the first
	}
	for i, h := range m.Headers {
		if h.Own || !strings.EqualFold(h.Name, mod.Name) {
			continue
		}
		if n--; n > 0 {
			continue
		}
		if isEmptyValue(mod.Value) {
			m.Headers = append(m.Headers[:i], m.Headers[i+1:]...)
			return fmt.Sprintf("Milter delete: header %s:%s", h.Name, oneLine(h.Value))
		}
		m.Headers[i].Value = mod.Value
		return fmt.Sprintf("Milter change: header %s: from%s to%s", h.Name, oneLine(h.Value), oneLine(mod.Value))
	}
	if isEmptyValue(mod.Value) {
		return "Milter delete (noop): header: " + mod.Name
	}
	m.Headers = append(m.Headers, Header{Name: mod.Name, Value: mod.Value})
	return fmt.Sprintf("Milter change (add): header: %s:%s", mod.Name, oneLine(mod.Value))
}

// oneLine keeps a folded value on one log line.
func oneLine(v string) string {
	return strings.ReplaceAll(strings.ReplaceAll(v, "\n\t", " "), "\n", " ")
}

func isEmptyValue(v string) bool { return strings.TrimSpace(v) == "" }

func indexRcpt(rs []Recipient, addr string) int {
	want := strings.ToLower(strings.Trim(strings.TrimSpace(addr), "<>"))
	for i, r := range rs {
		if strings.ToLower(strings.Trim(r.Addr, "<>")) == want {
			return i
		}
	}
	return -1
}

// angle puts an address in angle brackets, as the qf's S and R lines of
// an SMTP message have it.
func angle(a string) string {
	a = strings.TrimSpace(a)
	if strings.HasPrefix(a, "<") && strings.HasSuffix(a, ">") {
		return a
	}
	return "<" + a + ">"
}

// queueValue turns a header value from a filter (CRLF or LF folded) into
// the queue's form: LF folds, continuation lines that start with white
// space, and the leading space sendmail adds unless the filter asked for
// SMFIP_HDR_LEADSPC.
func queueValue(v string, leadingSpace bool) string {
	v = strings.ReplaceAll(v, "\r\n", "\n")
	v = strings.TrimRight(v, "\n")
	if strings.Contains(v, "\n") {
		lines := strings.Split(v, "\n")
		for i := 1; i < len(lines); i++ {
			if lines[i] == "" || (lines[i][0] != ' ' && lines[i][0] != '\t') {
				lines[i] = "\t" + lines[i]
			}
		}
		v = strings.Join(lines, "\n")
	}
	if !leadingSpace && v != "" {
		v = " " + v
	}
	return v
}

// wireValue is a queue-form value as a filter gets it: without the one
// leading space unless it asked for SMFIP_HDR_LEADSPC.
func wireValue(v string, leadingSpace bool) string {
	if !leadingSpace {
		v = strings.TrimPrefix(v, " ")
	}
	return v
}
