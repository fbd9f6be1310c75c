package cli

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		argv  string
		check func(*Invocation) bool
	}{
		{"sendmail -bd", func(i *Invocation) bool { return i.Mode == ModeDaemon }},
		{"sendmail -bD -q30m", func(i *Invocation) bool {
			return i.Mode == ModeDaemonFG && i.QueueRun && i.QueueInterval == 30*time.Minute
		}},
		{"sendmail -bd -q1h30m", func(i *Invocation) bool { return i.QueueInterval == 90*time.Minute }},
		{"sendmail -q", func(i *Invocation) bool { return i.Mode == ModeQueueRun && i.QueueInterval == 0 }},
		{"sendmail -q -v", func(i *Invocation) bool { return i.Mode == ModeQueueRun && i.Verbose }},
		{"sendmail -q 5", func(i *Invocation) bool { return i.QueueInterval == 5*time.Minute && len(i.Args) == 0 }},
		{"sendmail -qf", func(i *Invocation) bool { return i.QueueForeground && i.Mode == ModeQueueRun }},
		{"sendmail -qQ", func(i *Invocation) bool { return i.QueueQuarantined && i.Mode == ModeQueueRun }},
		{"sendmail -qIabc", func(i *Invocation) bool {
			return reflect.DeepEqual(i.QueueFilters, []QueueFilter{{Kind: 'I', Value: "abc"}})
		}},
		{"sendmail -qR@example.com -q!Sbob", func(i *Invocation) bool {
			return reflect.DeepEqual(i.QueueFilters, []QueueFilter{{Kind: 'R', Value: "@example.com"}, {Kind: 'S', Negate: true, Value: "bob"}})
		}},
		{"sendmail -qS", func(i *Invocation) bool { return len(i.QueueFilters) == 1 && i.QueueFilters[0].Kind == 'S' }},
		{"sendmail -oQ/dir -bp", func(i *Invocation) bool {
			return i.Mode == ModePrintQueue && reflect.DeepEqual(i.Options, []OptionSetting{{Name: "Q", Short: true, Value: "/dir"}})
		}},
		{"sendmail -oi -oem -odb -om -t", func(i *Invocation) bool {
			return i.ReadHeaders && len(i.Options) == 4 && i.Options[1] == OptionSetting{Name: "e", Short: true, Value: "m"} &&
				i.Options[2] == OptionSetting{Name: "d", Short: true, Value: "b"}
		}},
		{"sendmail -O Timeout.queuewarn=1h -OLogLevel=14 -bp", func(i *Invocation) bool {
			return reflect.DeepEqual(i.Options, []OptionSetting{{Name: "Timeout.queuewarn", Value: "1h"}, {Name: "LogLevel", Value: "14"}})
		}},
		{"sendmail -fuser@host bob", func(i *Invocation) bool { return i.Sender == "user@host" && i.Args[0] == "bob" }},
		{"sendmail -f user@host bob", func(i *Invocation) bool { return i.Sender == "user@host" && i.SenderSet && i.Args[0] == "bob" }},
		{"sendmail -r user@host bob", func(i *Invocation) bool { return i.Sender == "user@host" }},
		{"sendmail -F Full_Name bob", func(i *Invocation) bool { return i.FullName == "Full_Name" }},
		{"sendmail -h 17 bob", func(i *Invocation) bool { return i.Hops == 17 && i.Args[0] == "bob" }},
		{"sendmail -N success,delay -R hdrs -V env1 -B 8bitmime bob", func(i *Invocation) bool {
			return i.DSNNotify == "success,delay" && i.DSNRet == "hdrs" && i.EnvID == "env1" && i.BodyType == "8BITMIME"
		}},
		{"sendmail -N never bob", func(i *Invocation) bool { return i.DSNNotify == "never" }},
		{"sendmail -L tag -X /tmp/trace -C /x.cf bob", func(i *Invocation) bool {
			return i.LogTag == "tag" && i.TraceFile == "/tmp/trace" && i.ConfigFile == "/x.cf"
		}},
		{"sendmail -d0.1 -bt", func(i *Invocation) bool { return i.Mode == ModeTest && reflect.DeepEqual(i.Debug, []string{"0.1"}) }},
		{"sendmail -d -bt", func(i *Invocation) bool { return reflect.DeepEqual(i.Debug, []string{"0-99.1"}) }},
		{"sendmail -Am -bs", func(i *Invocation) bool { return i.Submission == 'm' && i.Mode == ModeSMTP }},
		{"sendmail -Ac -t", func(i *Invocation) bool { return i.Submission == 'c' && i.ReadHeaders }},
		{"sendmail -ti", func(i *Invocation) bool { return i.ReadHeaders && i.IgnoreDots }},
		{"sendmail -tfroot", func(i *Invocation) bool { return i.ReadHeaders && i.Sender == "root" }},
		{"sendmail -v -n -i bob", func(i *Invocation) bool { return i.Verbose && i.NoAlias && i.IgnoreDots }},
		{"sendmail bob -v", func(i *Invocation) bool { return reflect.DeepEqual(i.Args, []string{"bob", "-v"}) && !i.Verbose }},
		{"sendmail -- -bob", func(i *Invocation) bool { return reflect.DeepEqual(i.Args, []string{"-bob"}) }},
		{"sendmail -bv alice bob", func(i *Invocation) bool { return i.Mode == ModeVerify && len(i.Args) == 2 }},
		{"sendmail -bp extra args", func(i *Invocation) bool { return i.Mode == ModePrintQueue }},
		{"sendmail -bi", func(i *Invocation) bool { return i.Mode == ModeInitAliases }},
		{"sendmail -bh", func(i *Invocation) bool { return i.Mode == ModeHostStatus }},
		{"sendmail -bH", func(i *Invocation) bool { return i.Mode == ModePurgeHostStatus }},
		{"sendmail -oMrESMTP -Ms127.0.0.1 -bs", func(i *Invocation) bool {
			return i.Macros["r"] == "ESMTP" && i.Macros["s"] == "127.0.0.1"
		}},
		{"sendmail -M{daemon_name}X -bs", func(i *Invocation) bool { return i.Macros["daemon_name"] == "X" }},
		{"mailq -v", func(i *Invocation) bool { return i.Mode == ModePrintQueue && i.Verbose }},
		{"/usr/bin/newaliases", func(i *Invocation) bool { return i.Mode == ModeInitAliases }},
		{"hoststat", func(i *Invocation) bool { return i.Mode == ModeHostStatus }},
		{"purgestat", func(i *Invocation) bool { return i.Mode == ModePurgeHostStatus }},
		{"mail.local -f sender@x alice bob", func(i *Invocation) bool {
			return i.Mode == ModeMailLocal && reflect.DeepEqual(i.Args, []string{"-f", "sender@x", "alice", "bob"})
		}},
		{"mail.local -C /etc/x.cf -OMailSpoolDirectory=/tmp/m alice", func(i *Invocation) bool {
			return i.ConfigFile == "/etc/x.cf" && i.Options[0] == OptionSetting{Name: "MailSpoolDirectory", Value: "/tmp/m"}
		}},
		{"sendmail -B 9BIT -bv alice", func(i *Invocation) bool {
			return reflect.DeepEqual(i.Warnings, []string{"Illegal body type 9BIT"})
		}},
		{"sendmail -N bogus -bv alice", func(i *Invocation) bool { return reflect.DeepEqual(i.Warnings, []string{"Invalid -N argument"}) }},
		{"sendmail -R bogus -bv alice", func(i *Invocation) bool { return reflect.DeepEqual(i.Warnings, []string{"Invalid -R value"}) }},
	}
	for _, tc := range tests {
		inv, err := Parse(strings.Fields(tc.argv))
		if err != nil {
			t.Errorf("%s: unexpected error %v", tc.argv, err)
			continue
		}
		if !tc.check(inv) {
			t.Errorf("%s: unexpected invocation %+v", tc.argv, inv)
		}
	}
}

func TestEmptyEnvID(t *testing.T) {
	inv, err := Parse([]string{"sendmail", "-V", "", "-bv", "alice"})
	if err != nil || inv.Mode != ModeVerify || !inv.EnvIDSet || inv.EnvID != "" {
		t.Fatalf("got %+v, %v", inv, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		argv []string
		msg  string
		exit int
	}{
		{[]string{"sendmail", "-Z"}, "sendmail: illegal option -- Z", 64},
		{[]string{"sendmail", "-tZ"}, "sendmail: illegal option -- Z", 64},
		{[]string{"sendmail", "-bz", "alice"}, "Frozen configurations unsupported", 64},
		{[]string{"sendmail", "-by"}, "Invalid operation mode y", 64},
		{[]string{"sendmail", "--help"}, "Recipient names must be specified", 64},
		{[]string{"sendmail", "-bv"}, "Recipient names must be specified", 64},
		{[]string{"sendmail", "-bm"}, "Recipient names must be specified", 64},
		{[]string{"sendmail"}, "Recipient names must be specified", 64},
		{[]string{"sendmail", "-q5x"}, "Invalid time unit `x'", 64},
		{[]string{"sendmail", "-X"}, "sendmail: option requires an argument -- X", 64},
		{[]string{"sendmail", "-f"}, "sendmail: option requires an argument -- f", 64},
		{[]string{"sendmail", "-h", "x", "bob"}, "Bad hop count (x)", 64},
		{[]string{"sendmail", "-Ax", "bob"}, "Invalid -A argument", 64},
		{[]string{"mail.local", "-C"}, "mail.local: option requires an argument -- C", 64},
	}
	for _, tc := range tests {
		_, err := Parse(tc.argv)
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: want usage error, got %v", tc.argv, err)
			continue
		}
		if ue.Msg != tc.msg || ue.Exit != tc.exit {
			t.Errorf("%v: got %q exit %d, want %q exit %d", tc.argv, ue.Msg, ue.Exit, tc.msg, tc.exit)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"30m", 30 * time.Minute}, {"30", 30 * time.Minute}, {"1h", time.Hour}, {"2d", 48 * time.Hour},
		{"1w", 168 * time.Hour}, {"90s", 90 * time.Second}, {"1h30m", 90 * time.Minute}, {"", 0},
	} {
		got, err := ParseDuration(c.in, 'm')
		if err != nil || got != c.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"-bd -q30m", "-t -i -fuser@x bob", "-oQ/x -bp", "-O A=b", "-d", "-q", "-qR!x", "-h 3 a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		argv := append([]string{"sendmail"}, strings.Fields(s)...)
		inv, err := Parse(argv)
		if err != nil {
			var ue *UsageError
			if !errors.As(err, &ue) || ue.Exit == 0 || ue.Msg == "" {
				t.Fatalf("%q: error without usage meaning: %v", s, err)
			}
			return
		}
		if inv.Mode == "" {
			t.Fatalf("%q: no mode", s)
		}
	})
}
