package queue

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCrashDuringEnqueue runs enqueuers in a child process, kills it with
// SIGKILL while they work, and checks what the next Open finds: every job
// the child acknowledged is complete, no tf is left, and every qf is whole.
func TestCrashDuringEnqueue(t *testing.T) {
	if dir := os.Getenv("QUEUE_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	for round := 0; round < 3; round++ {
		dir := copyQueue(t, "")
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDuringEnqueue$")
		cmd.Env = append(os.Environ(), "QUEUE_CRASH_CHILD="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var acked []string
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if id, ok := strings.CutPrefix(sc.Text(), "ACK "); ok {
					acked = append(acked, id)
				}
			}
		}()
		time.Sleep(time.Duration(150+round*100) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		<-done
		s := openTest(t, dir)
		if tfs, _ := filepath.Glob(filepath.Join(dir, "tf*")); len(tfs) != 0 {
			t.Errorf("round %d: tf left after Open: %v", round, tfs)
		}
		x, lost, err := s.LoadIndex()
		if err != nil || len(lost) != 0 {
			t.Fatalf("round %d: %v lost %v", round, err, lost)
		}
		for _, id := range acked {
			if !indexHas(x, dir, id) {
				t.Errorf("round %d: acknowledged %s missing", round, id)
			}
			// The index reads only envelopes: the whole qf must parse too.
			if data, err := os.ReadFile(filepath.Join(dir, "qf"+id)); err != nil {
				t.Errorf("round %d: qf of %s: %v", round, id, err)
			} else if _, err := Parse(id, data); err != nil {
				t.Errorf("round %d: qf of %s: %v", round, id, err)
			}
			if data, err := os.ReadFile(filepath.Join(dir, "df"+id)); err != nil || string(data) != "crash test body\n" {
				t.Errorf("round %d: df of %s: %q %v", round, id, data, err)
			}
		}
		t.Logf("round %d: %d acknowledged, %d jobs found", round, len(acked), indexLen(x))
		s.Close()
	}
}

func crashChild(dir string) {
	s, err := Open(Options{Dirs: []string{dir}, Sync: SyncBatch})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := sampleJob("<a@x.example>")
				if err := s.Enqueue(j, strings.NewReader("crash test body\n")); err != nil {
					return
				}
				mu.Lock()
				fmt.Println("ACK", j.ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	os.Exit(0)
}
