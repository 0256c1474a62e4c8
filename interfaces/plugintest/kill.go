package plugintest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Kill SIGKILLs a plugin process that Process (or its variants) started
// and returns once the process has died: no clean shutdown, as a crash
// or the OOM killer would end it. go-plugin waits for the process itself,
// so a test must not call cmd.Wait (two Waits on one Cmd race).
func Kill(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if cmd.Process == nil {
		t.Fatal("plugintest.Kill: the process was not started")
	}
	pid := cmd.Process.Pid
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("plugintest.Kill: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !dead(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("plugintest.Kill: process %d still alive 30 s after SIGKILL", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dead reports whether pid has exited: it is gone, or a zombie waiting
// for go-plugin to reap it.
func dead(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		// No /proc (not Linux) or no such process.
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}
