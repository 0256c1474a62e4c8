// What the client's loops and ACKs say about each mix: receive.go records
// it, and the path choice (pki.go) avoids the mixes it points at.

package client

import "time"

type loopProbe struct {
	sent                    time.Time
	fwdMixes, ackMixes      [][32]byte
	bodyDeadline, ackDeadln time.Time
	bodyBack, ackBack       bool
	bodyLost, ackLost       bool
}

type mixHealth struct {
	loopsLost        int
	lastLost, lastOK time.Time
	// lostStreak counts losses through the mix since the last success
	// through it: a dead mix's grows without end, while an honest mix that
	// only shared lost loops with it is reset by its own successes.
	lostStreak int
}
