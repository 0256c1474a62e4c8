//go:build !linux

package localnet

import (
	"errors"
	"time"
)

// CPU is measured from /proc, on Linux only.
func (n *Node) CPU() (node time.Duration, plugins map[string]time.Duration, err error) {
	return 0, nil, errors.New("localnet: CPU times are read from /proc, on Linux only")
}
