package storagebadger

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
)

// crashChildEnv makes the test binary, re-executed by TestSIGKILL..., act as
// a writer: it opens the store in the named directory and appends batches
// until killed, printing each acknowledged ID after the call returned.
const crashChildEnv = "STORAGE_BADGER_CRASH_CHILD"

const crashBatch = 10

func crashPayload(id uint64) []byte { return []byte(fmt.Sprintf("payload-%08d", id)) }

func crashChild(dir string) {
	cfg := DefaultConfig(dir)
	cfg.SyncWrites = os.Getenv(crashChildEnv+"_SYNC") == "1"
	cfg.MemTableBytes = 8 << 20
	cfg.CacheBytes = 1 << 20
	cfg.Logger = quietLogger()
	s, err := Open(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	w := bufio.NewWriter(os.Stdout)
	next, first := uint64(1), uint64(0)
	for {
		msgs := make([]interfaces.MailboxMessage, crashBatch)
		for i := range msgs {
			msgs[i] = interfaces.MailboxMessage{Mailbox: mbox(42), Payload: crashPayload(next + uint64(i)), Lifetime: time.Hour}
		}
		resp, err := s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: msgs})
		if err != nil {
			fmt.Fprintln(os.Stderr, "child append:", err)
			os.Exit(3)
		}
		if first == 0 {
			first = resp.IDs[0] // the mailbox's first ID comes from the clock
		}
		for i, id := range resp.IDs {
			if want := first + next - 1 + uint64(i); id != want {
				fmt.Fprintf(os.Stderr, "child: got ID %d, want %d\n", id, want)
				os.Exit(4)
			}
			fmt.Fprintln(w, next+uint64(i)) // how many appends are acknowledged
		}
		w.Flush()
		next += crashBatch
	}
}

// TestSIGKILLLosesNoAcknowledgedAppend kills a writer process in the
// middle of a stream of appends, then reopens its database: every append
// the writer saw acknowledged is there with its payload, no batch is
// half-written, and the ID counter continues after the last stored ID.
// With SyncWrites off this still holds for a process crash (not for
// power loss, which a test cannot produce).
func TestSIGKILLLosesNoAcknowledgedAppend(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
			if sync {
				cmd.Env = append(cmd.Env, crashChildEnv+"_SYNC=1")
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := false
			t.Cleanup(func() { // no child outlives its test, even a failed one
				if !waited {
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
					waited = true
				}
			})
			var acked uint64
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				id, err := strconv.ParseUint(sc.Text(), 10, 64)
				if err != nil {
					t.Fatalf("child printed %q", sc.Text())
				}
				acked = id
				if acked >= 300 {
					break
				}
			}
			if err := cmd.Process.Kill(); err != nil { // SIGKILL on Unix
				t.Fatal(err)
			}
			// Drain what the child printed before it died: those were acknowledged too.
			for sc.Scan() {
				if id, err := strconv.ParseUint(sc.Text(), 10, 64); err == nil {
					acked = id
				}
			}
			_ = cmd.Wait()
			waited = true
			if acked < 300 {
				t.Fatalf("child stopped after %d appends: %s", acked, stderr.String())
			}

			s := openTest(t, testConfig(dir))
			es := fetchAll(t, s, mbox(42))
			if uint64(len(es)) < acked {
				t.Fatalf("%d messages survived, %d were acknowledged", len(es), acked)
			}
			if len(es)%crashBatch != 0 {
				t.Fatalf("%d messages survived: a batch of %d was half-written", len(es), crashBatch)
			}
			for i, e := range es {
				if e.ID != es[0].ID+uint64(i) || string(e.Payload) != string(crashPayload(uint64(i+1))) {
					t.Fatalf("message %d: ID %d payload %q", i, e.ID, e.Payload)
				}
			}
			if got := appendOK(t, s, msg(mbox(42), "after")); got[0] != es[len(es)-1].ID+1 {
				t.Fatalf("after the crash the next ID is %d, want %d", got[0], es[len(es)-1].ID+1)
			}
		})
	}
}
