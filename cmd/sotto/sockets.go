package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// socketDirPrefix names the directory, in the system temp dir, where one
// node process's plugins create their gRPC Unix sockets:
// sotto-plugins-PID. go-plugin removes a socket when its plugin exits
// cleanly; after a crash (SIGKILL, power loss) the sockets stay, so a node
// starting removes the directories of node processes that no longer run.
const socketDirPrefix = "sotto-plugins-"

// pluginSocketDir makes this process's socket directory (0700) after
// removing those left by dead nodes, and returns it with a func that
// removes it. The plugins are pointed at it through TMPDIR, which is where
// go-plugin's server creates its socket.
func pluginSocketDir(log *slog.Logger) (string, func(), error) {
	base := os.TempDir()
	removeStaleSocketDirs(base, log)
	dir := filepath.Join(base, socketDirPrefix+strconv.Itoa(os.Getpid()))
	if err := os.RemoveAll(dir); err != nil {
		return "", nil, fmt.Errorf("plugin socket dir: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("plugin socket dir: %w", err)
	}
	return dir, func() { _ = os.RemoveAll(dir) }, nil
}

// removeStaleSocketDirs removes base/sotto-plugins-PID for every PID that
// is not a running process.
func removeStaleSocketDirs(base string, log *slog.Logger) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), socketDirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pid, err := strconv.Atoi(rest)
		if err != nil || pid <= 0 || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(base, e.Name())); err == nil {
			log.Info("removed plugin sockets left by a node that no longer runs", "pid", pid)
		}
	}
}

// processAlive reports whether pid names a process (ours or another
// user's).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
