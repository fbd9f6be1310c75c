package accept

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/status"
)

// With MinFreeBlocks above what the queue's file system has, nothing is
// accepted: sendmail's 452 4.4.5 and its "low on space" alert, and no file
// is left in the queue.
func TestCheckSpace(t *testing.T) {
	a, dir := newAcceptor(t, nil)
	var log bytes.Buffer
	a.Log = maillog.New(&log, "sm-mta")
	sp, err := a.Store.FreeSpace()
	if err != nil {
		t.Fatal(err)
	}
	const refusal = "452 4.4.5 Insufficient disk space; try again later"
	a.MinFreeBlocks = sp.Avail + 1<<20 // more than there is, even if others free space meanwhile
	if _, err := a.Begin(false); status.From(err).Error() != refusal {
		t.Errorf("Begin below the bound: %v", err)
	}
	if _, err := a.BeginID(a.Store.NewID(), false); status.From(err).Error() != refusal {
		t.Errorf("BeginID below the bound: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 1 { // .spare may exist
		t.Errorf("queue not empty after refusals: %v", entries)
	}
	if !strings.Contains(log.String(), "low on space (SMTP-DAEMON needs 0 bytes + ") || !strings.Contains(log.String(), ", max avail: ") {
		t.Errorf("log:\n%s", log.String())
	}

	a.MinFreeBlocks = 1
	m, err := a.Begin(false)
	if err != nil {
		t.Fatalf("Begin with room: %v", err)
	}
	m.Abort()
	if err := a.CheckSpace(4096); err != nil {
		t.Errorf("CheckSpace(4096): %v", err)
	}
	if err := a.CheckSpace(sp.Avail*sp.BlockSize + 1<<40); status.From(err).Error() != refusal {
		t.Errorf("CheckSpace(more than the disk): %v", err)
	}
	a.MinFreeBlocks = 0
	if err := a.CheckSpace(0); err != nil {
		t.Errorf("no bound, no size: %v", err)
	}
}
