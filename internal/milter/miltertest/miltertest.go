// Package miltertest is a scriptable fake mail filter for tests: it speaks
// the filter side of the Milter protocol (version 6) with its own packet
// code, independent of the client library posthorn uses, records every
// packet it receives, and answers each command as its Script says.
//
// Wire format (libmilter's mfdef.h): every packet is a 4-byte big-endian
// length, counting the command byte and the data, then the command byte
// and the data. Strings are NUL-terminated. The MTA opens with 'O'
// (version, actions, protocol steps); the filter answers 'O' with the ones
// it wants. Commands that get a reply: C connect, H helo, M mail, R rcpt,
// T data, L header, N end of header, B body chunk, U unknown, E end of
// message (modification packets, then the final answer). D (macros), A
// (abort) and Q (quit) get none.
package miltertest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// Commands (SMFIC_*).
const (
	CmdAbort   = 'A'
	CmdBody    = 'B'
	CmdConnect = 'C'
	CmdMacro   = 'D'
	CmdEOM     = 'E'
	CmdHelo    = 'H'
	CmdHeader  = 'L'
	CmdMail    = 'M'
	CmdEOH     = 'N'
	CmdOptNeg  = 'O'
	CmdQuit    = 'Q'
	CmdRcpt    = 'R'
	CmdData    = 'T'
	CmdUnknown = 'U'
)

// Packet is one protocol packet.
type Packet struct {
	Cmd  byte
	Data []byte
}

func (p Packet) String() string { return fmt.Sprintf("%c %q", p.Cmd, p.Data) }

// Replies (SMFIR_*).
func Continue() Packet { return Packet{Cmd: 'c'} }
func Accept() Packet   { return Packet{Cmd: 'a'} }
func Reject() Packet   { return Packet{Cmd: 'r'} }
func TempFail() Packet { return Packet{Cmd: 't'} }
func Discard() Packet  { return Packet{Cmd: 'd'} }
func Progress() Packet { return Packet{Cmd: 'p'} }

// ReplyCode is SMFIR_REPLYCODE: "550 5.7.1 text".
func ReplyCode(text string) Packet { return Packet{Cmd: 'y', Data: cstr(text)} }

// AddHeader is SMFIR_ADDHEADER.
func AddHeader(name, value string) Packet { return Packet{Cmd: 'h', Data: cstr(name, value)} }

// InsertHeader is SMFIR_INSHEADER: after the idx-th field (0: first).
func InsertHeader(idx uint32, name, value string) Packet {
	return Packet{Cmd: 'i', Data: append(u32(idx), cstr(name, value)...)}
}

// ChangeHeader is SMFIR_CHGHEADER; an empty value deletes.
func ChangeHeader(idx uint32, name, value string) Packet {
	return Packet{Cmd: 'm', Data: append(u32(idx), cstr(name, value)...)}
}

// AddRcpt is SMFIR_ADDRCPT; AddRcptArgs is SMFIR_ADDRCPT_PAR.
func AddRcpt(addr string) Packet           { return Packet{Cmd: '+', Data: cstr(addr)} }
func AddRcptArgs(addr, args string) Packet { return Packet{Cmd: '2', Data: cstr(addr, args)} }
func DelRcpt(addr string) Packet           { return Packet{Cmd: '-', Data: cstr(addr)} }
func ChangeFrom(addr, args string) Packet  { return Packet{Cmd: 'e', Data: cstr(addr, args)} }
func ReplaceBody(body string) Packet       { return Packet{Cmd: 'b', Data: []byte(body)} }
func Quarantine(reason string) Packet      { return Packet{Cmd: 'q', Data: cstr(reason)} }
func Raw(cmd byte, data string) Packet     { return Packet{Cmd: cmd, Data: []byte(data)} }

func cstr(s ...string) []byte {
	var b []byte
	for _, x := range s {
		b = append(b, x...)
		b = append(b, 0)
	}
	return b
}

func u32(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

// Protocol step bits a filter may ask for (SMFIP_*).
const (
	NoConnect  = 1 << 0
	NoHelo     = 1 << 1
	NoMail     = 1 << 2
	NoRcpt     = 1 << 3
	NoBody     = 1 << 4
	NoHeaders  = 1 << 5
	NoEOH      = 1 << 6
	NoUnknown  = 1 << 8
	NoData     = 1 << 9
	HdrLeadSpc = 1 << 20
	AllActions = 0x1ff
)

// noReply maps a command to its SMFIP_NR_* bit.
var noReply = map[byte]uint32{CmdHeader: 1 << 7, CmdConnect: 1 << 12, CmdHelo: 1 << 13, CmdMail: 1 << 14,
	CmdRcpt: 1 << 15, CmdData: 1 << 16, CmdUnknown: 1 << 17, CmdEOH: 1 << 18, CmdBody: 1 << 19}

// Script says how the fake filter answers.
type Script struct {
	// Actions and Protocol are what the filter asks for at negotiation
	// (0 Actions: all of them).
	Actions  uint32
	Protocol uint32
	// Reply is the answer to each command (default Continue); EOM the
	// packets after end of message (default just Continue): the
	// modifications, then the final answer.
	Reply map[byte]Packet
	EOM   []Packet
	// Delay holds the answer to a command this long (a slow filter).
	Delay map[byte]time.Duration
	// Garbage makes the filter answer this command with bytes that are
	// no packet.
	Garbage byte
	// Hangup closes the connection instead of answering this command.
	Hangup byte
	// Progress sends this many progress packets, Every apart, before
	// the end-of-message answer (a filter that takes its time).
	Progress int
	Every    time.Duration
}

// Server is a fake filter listening on 127.0.0.1.
type Server struct {
	ln net.Listener

	mu      sync.Mutex
	script  Script
	conns   int
	packets [][]Packet // per connection
	wg      sync.WaitGroup
}

// Start listens on a free loopback port and serves script.
func Start(script Script) (*Server, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, script: script}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Port is the listening port.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Socket is the S= equate for an X line: "inet:PORT@127.0.0.1".
func (s *Server) Socket() string { return fmt.Sprintf("inet:%d@127.0.0.1", s.Port()) }

// SetScript changes the answers for the next connections.
func (s *Server) SetScript(sc Script) {
	s.mu.Lock()
	s.script = sc
	s.mu.Unlock()
}

// Conns is how many connections the filter has accepted.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Packets returns the packets received on each connection so far.
func (s *Server) Packets() [][]Packet {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]Packet, len(s.packets))
	for i, p := range s.packets {
		out[i] = append([]Packet(nil), p...)
	}
	return out
}

// Close stops listening and waits for the connections to end.
func (s *Server) Close() {
	s.ln.Close()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		idx := s.conns
		s.conns++
		s.packets = append(s.packets, nil)
		sc := s.script
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.serve(c, idx, sc)
		}()
	}
}

func (s *Server) record(idx int, p Packet) {
	s.mu.Lock()
	s.packets[idx] = append(s.packets[idx], p)
	s.mu.Unlock()
}

func (s *Server) serve(c net.Conn, idx int, sc Script) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	var proto uint32
	for {
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		p, err := ReadPacket(r)
		if err != nil {
			return
		}
		s.record(idx, p)
		if d := sc.Delay[p.Cmd]; d > 0 {
			time.Sleep(d)
		}
		if sc.Hangup != 0 && p.Cmd == sc.Hangup {
			return
		}
		if sc.Garbage != 0 && p.Cmd == sc.Garbage {
			w.WriteString("\x00\x00\x00\x05zjunkjunk\xff\xff\xff\xff")
			w.Flush()
			continue
		}
		var out []Packet
		switch p.Cmd {
		case CmdOptNeg:
			if len(p.Data) < 12 {
				return
			}
			acts := sc.Actions
			if acts == 0 {
				acts = binary.BigEndian.Uint32(p.Data[4:])
			}
			proto = sc.Protocol & binary.BigEndian.Uint32(p.Data[8:])
			data := append(u32(6), u32(acts)...)
			out = []Packet{{Cmd: CmdOptNeg, Data: append(data, u32(proto)...)}}
		case CmdMacro, CmdAbort:
		case CmdQuit:
			return
		case CmdEOM:
			for i := 0; i < sc.Progress; i++ {
				time.Sleep(sc.Every)
				if WritePacket(w, Progress()) != nil || w.Flush() != nil {
					return
				}
			}
			out = sc.EOM
			if len(out) == 0 {
				out = []Packet{Continue()}
			}
		default:
			if proto&noReply[p.Cmd] != 0 {
				break
			}
			rp, ok := sc.Reply[p.Cmd]
			if !ok {
				rp = Continue()
			}
			out = []Packet{rp}
		}
		for _, o := range out {
			if err := WritePacket(w, o); err != nil {
				return
			}
		}
		if err := w.Flush(); err != nil {
			return
		}
	}
}

// ReadPacket reads one packet.
func ReadPacket(r io.Reader) (Packet, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Packet{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > 1<<20 {
		return Packet{}, fmt.Errorf("miltertest: bad packet length %d", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return Packet{}, err
	}
	return Packet{Cmd: b[0], Data: b[1:]}, nil
}

// WritePacket writes one packet.
func WritePacket(w io.Writer, p Packet) error {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(p.Data)+1))
	b = append(b, p.Cmd)
	b = append(b, p.Data...)
	_, err := w.Write(b)
	return err
}

// Transcript renders packets one per line for golden files: the command
// letter, then the data with NULs shown as "\0" and other bytes below 32
// as \xNN.
func Transcript(ps []Packet) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteByte(p.Cmd)
		b.WriteByte(' ')
		for _, c := range p.Data {
			switch {
			case c == 0:
				b.WriteString(`\0`)
			case c < 32 || c >= 127 || c == '\\':
				fmt.Fprintf(&b, `\x%02x`, c)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}
