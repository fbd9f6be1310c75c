package test

import (
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	smtp "github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"
)

// TestMSAToMailOut is the medium site's outgoing leg: users submit to an
// MSA (port 587 with M=Ea: STARTTLS, AUTH, the sender must be the user's),
// whose smart host is the site's mail-out host, which relays to the
// outside world (here a sink on another loopback address, reached through
// the mail-out's mailertable). The message arrives once, with the MSA's
// and the mail-out's Received headers; the MSA never talks to the
// outside itself.
func TestMSAToMailOut(t *testing.T) {
	sink := startSink(t, "127.0.0.1:0", nil)
	_, sinkPort, _ := strings.Cut(sink.addr, ":")

	out := newRoot(t, "O DeliveryMode=background", "O AcceptUnresolvableDomains=True", "Djmailout.site.test")
	os.WriteFile(out.path("etc/mailertable"), []byte("outside.example esmtp:[127.0.0.1]:"+sinkPort+"\n"), 0o644)
	writeAliases(t, out, "postmaster: root\n")
	startDaemon(t, out)
	c, _, _ := waitGreeting(t, out.addr())
	c.Close()
	_, outPort, _ := strings.Cut(out.addr(), ":")

	msaPort := freePort(t)
	msa := newRoot(t, "O DeliveryMode=background", "O AcceptUnresolvableDomains=True", "Djmsa.site.test",
		fmt.Sprintf("O DaemonPortOptions=Name=MSA, Family=inet, Addr=127.0.0.1, Port=%d, M=Ea", msaPort),
		"O ServerCertFile=CERT", "O ServerKeyFile=KEY",
		"DS[127.0.0.1]:"+outPort) // the smart host: everything not local goes to mail-out
	cert, key := msa.path("etc/server.crt"), msa.path("etc/server.key")
	writeTestCert(t, cert, key)
	cf, _ := os.ReadFile(msa.cf)
	os.WriteFile(msa.cf, []byte(strings.NewReplacer("=CERT", "="+cert, "=KEY", "="+key).Replace(string(cf))), 0o644)
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	os.WriteFile(msa.path("etc/auth"), []byte("alice:"+string(hash)+"\n"), 0o600)
	writeAliases(t, msa, "postmaster: root\n")
	startDaemon(t, msa)
	msaAddr := fmt.Sprintf("127.0.0.1:%d", msaPort)
	c, _, _ = waitGreeting(t, msaAddr)
	c.Close()

	sc, err := smtp.DialStartTLS(msaAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.Auth(sasl.NewPlainClient("", "alice", "s3cret")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := sc.Mail("mallory@elsewhere.example", nil); err == nil {
		t.Error("the MSA took a sender that is not alice's")
	}
	sc.Reset()
	msg := "From: Alice <alice@msa.site.test>\r\nTo: friend@outside.example\r\nSubject: through the site\r\n\r\nhello outside\r\n"
	if err := sc.SendMail("alice@msa.site.test", []string{"friend@outside.example"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("submission: %v", err)
	}
	sc.Quit()

	waitFor(t, "the message at the outside peer", func() bool { return len(sink.messages()) == 1 })
	m := sink.messages()[0]
	if m.From != "alice@msa.site.test" || len(m.Rcpts) != 1 || m.Rcpts[0] != "friend@outside.example" {
		t.Errorf("the outside peer got from %q to %q", m.From, m.Rcpts)
	}
	if !strings.Contains(m.Data, "by mailout.site.test") || !strings.Contains(m.Data, "by msa.site.test") || !strings.Contains(m.Data, "hello outside") {
		t.Errorf("the message lacks a hop or its body:\n%s", m.Data)
	}
	waitFor(t, "both queues empty", func() bool {
		return strings.Contains(run(t, binary(t), "", "-C", msa.cf, "-bp").stdout, "is empty") &&
			strings.Contains(run(t, binary(t), "", "-C", out.cf, "-bp").stdout, "is empty")
	})
}
