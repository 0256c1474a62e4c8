package localnet

import (
	"crypto/sha256"
	"os"
	"testing"
	"time"
)

func TestProcCPUReadsThisProcess(t *testing.T) {
	before, ppid, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if ppid != os.Getppid() {
		t.Errorf("parent %d, want %d", ppid, os.Getppid())
	}
	// Burn CPU until the counter shows 50 ms of it: on a loaded machine
	// that takes longer than 50 ms of wall time, so the test checks that
	// the counter moves, not a rate, and fails only if it never does.
	h := sha256.New()
	buf := make([]byte, 4096)
	var after time.Duration
	for start := time.Now(); ; {
		for range 256 {
			h.Write(buf)
		}
		if after, _, err = procCPU(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if after-before >= 50*time.Millisecond {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("CPU went from %v to %v over 30 s of hashing", before, after)
		}
	}
	if _, _, err := procCPU(-1); err == nil {
		t.Error("no error for a process that cannot exist")
	}
}
