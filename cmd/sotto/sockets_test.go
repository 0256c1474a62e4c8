package main

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

func TestStalePluginSocketDirsAreRemoved(t *testing.T) {
	base := t.TempDir()
	// A pid that no longer runs: a child that has exited and been reaped.
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	dead := c.Process.Pid
	live := os.Getppid()
	for _, name := range []string{
		socketDirPrefix + strconv.Itoa(dead),
		socketDirPrefix + strconv.Itoa(live),
		socketDirPrefix + "notapid",
		"other-" + strconv.Itoa(dead),
	} {
		if err := os.MkdirAll(filepath.Join(base, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, name, "plugin123"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removeStaleSocketDirs(base, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for name, want := range map[string]bool{
		socketDirPrefix + strconv.Itoa(dead): false,
		socketDirPrefix + strconv.Itoa(live): true,
		socketDirPrefix + "notapid":          true,
		"other-" + strconv.Itoa(dead):        true,
	} {
		_, err := os.Stat(filepath.Join(base, name))
		if got := err == nil; got != want {
			t.Errorf("%s: present %v, want %v", name, got, want)
		}
	}
}

func TestPluginSocketDirIsThisProcesssAndRemovedAfter(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	dir, remove, err := pluginSocketDir(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(dir) != socketDirPrefix+strconv.Itoa(os.Getpid()) {
		t.Fatalf("dir %s is not named after this process", dir)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir %s: %v, mode %v; want 0700", dir, err, fi.Mode().Perm())
	}
	remove()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("dir %s still there after remove: %v", dir, err)
	}
}
