package smtpd

import (
	"bufio"
	_ "embed"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

//go:embed help.txt
var helpText string

// parseHelp reads help.txt into topic -> lines.
func parseHelp(text, version string) map[string][]string {
	topics := map[string][]string{}
	cur := ""
	for _, l := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "@"):
			cur = l[1:]
		case cur != "" && l != "":
			topics[cur] = append(topics[cur], strings.ReplaceAll(l, "$v", version))
		}
	}
	return topics
}

// help answers HELP [topic]: from Config.HelpFile when it is set and can be
// read (read at each HELP, as sendmail does), otherwise from the embedded
// texts, whose topics are matched without case and cut to 10 characters.
func (s *session) help(arg string) {
	topic := strings.ToLower(strings.TrimSpace(arg))
	if s.srv.cfg.HelpFile != "" {
		if f, err := openHelpFile(s.srv.cfg.HelpFile); err == nil {
			lines := helpFromFile(f, topic, s.srv.cfg.Version, s.srv.expandHelp)
			f.Close()
			s.helpReply(topic, lines)
			return
		}
	}
	if topic == "" {
		topic = "smtp"
	}
	if len(topic) > 10 {
		topic = topic[:10]
	}
	s.helpReply(topic, s.srv.help[topic])
}

// helpReply sends the 214 lines, or sendmail's 504 for a topic with none
// (HELP without a topic always ends with 214).
func (s *session) helpReply(topic string, lines []string) {
	if lines == nil && topic != "" {
		if len(topic) > 10 {
			topic = topic[:10]
		}
		s.reply(504, "5.3.0", "HELP topic \"%s\" unknown", topic)
		return
	}
	for _, l := range lines {
		s.out = append(s.out, formatLine(214, "2.0.0", l, true)...)
	}
	s.reply(214, "2.0.0", "End of HELP info")
}

// openHelpFile opens a HelpFile that is a regular file (sendmail's
// SFF_REGONLY); a FIFO there must not hang the session.
func openHelpFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, os.ErrInvalid
	}
	return f, nil
}

// helpFromFile reads sendmail's helpfile format:
//
//	#vers	2
//	smtp	This is sendmail version $v
//	smtp	Topics:
//	mail	MAIL From:<sender> [ <parameters> ]
//
// Each line is a topic, a blank or tab, and one line of text; "#" lines
// are comments, except "#vers<TAB>N". A topic's lines are those whose start
// is the requested topic (sendmail compares that many bytes, so "HELP r"
// shows the rcpt and rset lines); no topic means "smtp". With "#vers 2"
// or later the texts have their macros expanded; before the "smtp" text of
// an older file comes "This is <Version>", where sendmail puts "This is
// Sendmail version <v>". It returns nil
// when a requested topic has no line.
func helpFromFile(r io.Reader, topic, version string, expand func(string) string) []string {
	noinfo := topic != ""
	if topic == "" {
		topic = "smtp"
	}
	vers := -1
	var lines []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		if strings.HasPrefix(l, "#") {
			if n, ok := strings.CutPrefix(l, "#vers\t"); ok && vers < 0 {
				if v, err := strconv.Atoi(strings.TrimSpace(n)); err == nil {
					vers = v
				}
			}
			continue
		}
		if !strings.HasPrefix(l, topic) {
			continue
		}
		if lines == nil && vers < 2 && !noinfo {
			lines = append(lines, "This is "+version) // sendmail: "This is Sendmail version <v>"
		}
		text := ""
		if i := strings.IndexAny(l, " \t"); i >= 0 {
			text = l[i+1:]
		}
		if vers >= 2 {
			text = expand(text)
		}
		lines = append(lines, text)
	}
	if lines == nil && !noinfo {
		return []string{}
	}
	return lines
}

// expandHelp expands a HelpFile text's macros: Config.ExpandMacros, or
// only $v (Version) and $j (Hostname) without it.
func (srv *Server) expandHelp(s string) string {
	if srv.cfg.ExpandMacros != nil {
		return srv.cfg.ExpandMacros(s)
	}
	return strings.NewReplacer("$v", srv.cfg.Version, "$j", srv.cfg.Hostname).Replace(s)
}
