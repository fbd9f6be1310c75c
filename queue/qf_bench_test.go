package queue

import (
	"testing"
	"time"
)

// benchJob is a job as the daemon writes one for a 2 KiB SMTP message.
func benchJob() *Job {
	j := &Job{ID: "6B43sVkL029650", Created: time.Unix(1796356471, 0), Priority: 32152, Flags: "bs",
		Macros:     []Macro{{"_", "localhost [127.0.0.1]"}, {"r", "ESMTP"}, {"s", "client.example"}, {"{daemon_flags}", ""}},
		Sender:     "<load@client.example>",
		Recipients: []Recipient{{Flags: "PFD", Addr: "<user@localhost>", FinalRcpt: "RFC822; user@localhost"}},
		Headers: []Header{
			{HasCond: true, Cond: "P", Name: "Return-Path", Value: " <\x81g>"},
			{HasCond: true, Name: "Received", Value: " from client.example (localhost [127.0.0.1])\n\tby posthorn.test (posthorn 0.1.0) with ESMTP id 6B43sVkL029650\n\tfor <user@localhost>; Fri, 4 Dec 2026 03:54:31 GMT"},
			{HasCond: true, Name: "From", Value: " <load@client.example>"},
			{HasCond: true, Name: "To", Value: " <user@localhost>"},
			{HasCond: true, Name: "Date", Value: " Fri,  4 Dec 2026 03:54:30 +0000 (UTC)"},
			{HasCond: true, Name: "Message-Id", Value: " <755e.0012.07e2@client.example>"},
			{HasCond: true, Name: "Subject", Value: " bench"},
		}}
	return j
}

// BenchmarkMarshal: writing the control file of a typical job.
func BenchmarkMarshal(b *testing.B) {
	j := benchJob()
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(Marshal(j))
	}
	b.SetBytes(int64(n))
}

// BenchmarkParse: reading it back, as a queue run or a delivery does.
func BenchmarkParse(b *testing.B) {
	data := Marshal(benchJob())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("6B43sVkL029650", data); err != nil {
			b.Fatal(err)
		}
	}
}
