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
	h := sha256.New()
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		h.Write(make([]byte, 4096)) // burn CPU
	}
	after, _, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 50*time.Millisecond {
		t.Errorf("CPU went from %v to %v over 300 ms of hashing", before, after)
	}
	if _, _, err := procCPU(-1); err == nil {
		t.Error("no error for a process that cannot exist")
	}
}
