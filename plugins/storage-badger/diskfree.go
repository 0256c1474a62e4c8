package storagebadger

import (
	"errors"
	"fmt"

	"github.com/sottonet/sotto/interfaces"
)

// ErrDiskFull: the filesystem under the store's directory has less free
// space than min_free_bytes; the write was refused before Badger saw it.
// It wraps interfaces.ErrUnavailable: the caller may retry once space
// returns, and nothing of the refused request was stored.
var ErrDiskFull = fmt.Errorf("storage-badger: disk nearly full: %w", interfaces.ErrUnavailable)

// checkSpace refuses a write when the filesystem under Dir keeps less than
// MinFreeBytes free (a statfs per write: microseconds beside a synced
// commit). Where free space cannot be read, writes go ahead.
func (s *Store) checkSpace() error {
	if s.cfg.MinFreeBytes < 0 {
		return nil
	}
	free, err := freeBytes(s.cfg.Dir)
	if err != nil {
		if errors.Is(err, errNoStatfs) {
			return nil
		}
		return fmt.Errorf("%w: reading free space of %s: %w", interfaces.ErrUnavailable, s.cfg.Dir, err)
	}
	if free < uint64(s.cfg.MinFreeBytes) {
		return fmt.Errorf("%w: %d bytes free under %s, min_free_bytes is %d", ErrDiskFull, free, s.cfg.Dir, s.cfg.MinFreeBytes)
	}
	return nil
}

var errNoStatfs = errors.New("free space unknown on this platform")
