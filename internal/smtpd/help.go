package smtpd

import (
	_ "embed"
	"strings"
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

// help answers HELP [topic]: topics are matched without case and cut to
// 10 characters, as sendmail does.
func (s *session) help(arg string) {
	topic := strings.ToLower(strings.TrimSpace(arg))
	if topic == "" {
		topic = "smtp"
	}
	if len(topic) > 10 {
		topic = topic[:10]
	}
	lines, ok := s.srv.help[topic]
	if !ok {
		s.reply(504, "5.3.0", "HELP topic \"%s\" unknown", topic)
		return
	}
	for _, l := range lines {
		s.out = append(s.out, formatLine(214, "2.0.0", l, true)...)
	}
	s.reply(214, "2.0.0", "End of HELP info")
}
