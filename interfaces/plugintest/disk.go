package plugintest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// SkipUnlessCI skips the test with why, except under CI=true (which
// .ci/run sets): there a missing privilege or tool fails the test, so
// what CI is meant to run is never silently untested.
func SkipUnlessCI(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why + "; skipped")
}

// SmallDisk mounts a tmpfs of size (mount's notation: "96m") on a new
// temporary directory and returns it, unmounted when the test ends: a
// filesystem a test can fill to see a plugin or node on a full disk.
// Mounting needs root; elsewhere the test is skipped (SkipUnlessCI).
func SmallDisk(t testing.TB, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipUnlessCI(t, "mounting a size-limited tmpfs needs root (CI runs as root)")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
		SkipUnlessCI(t, fmt.Sprintf("cannot mount a tmpfs (%v: %s)", err, out))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	return mnt
}
