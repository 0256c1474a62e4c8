// Where a client's state lives between runs (Config.Store): a small
// interface, an in-memory store, and the file store programs use.

package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Store keeps one client's state: an opaque byte string the client
// replaces whole on every change. Implementations must be safe for
// concurrent use.
type Store interface {
	// Load returns the state last saved, or nil and no error when there is
	// none yet.
	Load() ([]byte, error)
	// Save replaces the state. When it returns nil the new state is
	// durable: whatever happens next, Load returns it or a later one,
	// never a mix of two.
	Save(state []byte) error
}

// ErrLocked: another process holds the state (OpenFileStore).
var ErrLocked = errors.New("client: state in use by another process")

// MemoryStore is a Store in memory: it survives a restart of the Client
// within one process (tests, or a browser tab that keeps its own copy),
// not of the process.
type MemoryStore struct {
	mu    sync.Mutex
	state []byte
	saves int
}

// Load returns a copy of the state last saved.
func (m *MemoryStore) Load() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == nil {
		return nil, nil
	}
	return append([]byte(nil), m.state...), nil
}

// Save keeps a copy of state.
func (m *MemoryStore) Save(state []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state = append([]byte(nil), state...)
	m.saves++
	return nil
}

// Saves counts the calls to Save.
func (m *MemoryStore) Saves() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saves
}

// FileStore keeps a client's state in one owner-only file. Save writes a
// temporary file beside it, fsyncs it, renames it over the state and
// fsyncs the folder, so a crash or a power cut leaves the old state or the
// new one. While it is open, it holds an exclusive lock (flock) on PATH.lock:
// a second process opening the same state gets ErrLocked, instead of the
// two stealing each other's messages from one mailbox. (On platforms
// without flock, js/wasm among them, there is no lock.)
type FileStore struct {
	path string
	lock *os.File
	mu   sync.Mutex
}

var _ Store = (*FileStore)(nil)

// OpenFileStore opens (and locks) the state file at path; the file itself
// is created by the first Save. A state file that others can read is
// refused: it holds the client's keys.
func OpenFileStore(path string) (*FileStore, error) {
	if path == "" {
		return nil, errors.New("client: no state file path")
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("client: state file %s is readable by others (mode %v): it holds the client's keys; chmod 600 it", path, fi.Mode().Perm())
	}
	lf, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("client: state lock: %w", err)
	}
	if err := lockFile(lf); err != nil {
		holder, _ := os.ReadFile(path + ".lock")
		lf.Close()
		if errors.Is(err, ErrLocked) {
			who := ""
			if len(holder) > 0 && len(holder) < 32 {
				who = fmt.Sprintf(" (pid %s)", holder)
			}
			return nil, fmt.Errorf("%w%s: %s; one state serves one running client", ErrLocked, who, path)
		}
		return nil, fmt.Errorf("client: locking %s: %w", path, err)
	}
	// The holder's pid, for the error a second process reports.
	if err := lf.Truncate(0); err == nil {
		_, _ = lf.WriteAt(fmt.Appendf(nil, "%d", os.Getpid()), 0)
	}
	return &FileStore{path: path, lock: lf}, nil
}

// Path is the state file's path.
func (s *FileStore) Path() string { return s.path }

// Load reads the state file; a missing file is an empty state.
func (s *FileStore) Load() ([]byte, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client: reading the state: %w", err)
	}
	return b, nil
}

// Save replaces the state file atomically and durably.
func (s *FileStore) Save(state []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return errors.New("client: state file closed")
	}
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(s.path)+".*")
	if err != nil {
		return fmt.Errorf("client: saving the state: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(state)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("client: saving the state: %w", err)
	}
	return nil
}

// Close releases the lock; close the store after the client that used it.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	err := unlockFile(s.lock)
	if cerr := s.lock.Close(); err == nil {
		err = cerr
	}
	s.lock = nil
	return err
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}
