package blindsig

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	"github.com/sottonet/sotto/interfaces"
)

// What Redeem keeps for ever otherwise: a spent mark per token ("s"), an
// issuer key per period ("k") and a free quota per client and epoch ("q").
// A mark is needed only while its key's tokens are accepted, a key only
// while its tokens are, a quota only in its epoch. The issuer drops them
// one epoch later than that, so a Redeem or an Issue the host started at
// the end of the previous epoch still finds what it needs.

// pruneTimeout bounds one pass; what it leaves the next pass finishes.
const pruneTimeout = time.Minute

// pruneBatch is how many keys one KVList or KVDelete carries.
const pruneBatch = 512

// deadPeriods is the number of key periods, from period 0, whose tokens no
// Redeem in epoch e or e−1 accepts: p with until(p) < e.
func (i *Issuer) deadPeriods(e uint64) uint64 {
	g := i.cfg.GraceEpochs
	if e <= g+1 {
		return 0
	}
	// until(p) = (p+1)·K + G < e  ⇔  p+1 ≤ (e−G−1)/K.
	return (e - g - 1) / i.cfg.KeyEpochs
}

// maybePrune starts a pass in the background when epoch e has made
// something dead that no pass has dropped yet; one pass at a time.
func (i *Issuer) maybePrune(e uint64) {
	i.mu.Lock()
	if i.pruning || e <= i.prunedAt {
		i.mu.Unlock()
		return
	}
	i.pruning = true
	i.mu.Unlock()
	i.pruneWG.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), pruneTimeout)
		defer cancel()
		err := i.prune(ctx, e)
		i.mu.Lock()
		i.pruning = false
		if err == nil {
			i.prunedAt = e
		}
		i.mu.Unlock()
		if err != nil {
			slog.Warn("pay-blindsig: dropping expired spent marks; the next epoch tries again", "epoch", e, "err", err)
		}
	})
}

// prune drops, as of epoch e, the spent marks and issuer keys of dead
// periods and the free quotas of epochs before e−1.
func (i *Issuer) prune(ctx context.Context, e uint64) error {
	dead := i.deadPeriods(e)
	for _, p := range []struct {
		prefix byte
		below  uint64
	}{{'s', dead}, {'k', dead}, {'q', max(e, 1) - 1}} {
		if p.below == 0 {
			continue
		}
		if err := i.dropBelow(ctx, p.prefix, p.below); err != nil {
			return err
		}
	}
	i.mu.Lock()
	for period := range i.keys {
		if period < dead {
			delete(i.keys, period)
		}
	}
	i.mu.Unlock()
	return nil
}

// dropBelow deletes the keys prefix‖n… with n (8 bytes, big-endian) below
// limit. Keys list in ascending byte order, so the first key at or above
// limit ends the pass.
func (i *Issuer) dropBelow(ctx context.Context, prefix byte, limit uint64) error {
	// Deleted keys no longer list, so every round starts from the front.
	for {
		got, err := i.kv.KVList(ctx, &interfaces.KVListRequest{Namespace: Namespace, Prefix: []byte{prefix}, Limit: pruneBatch})
		if err != nil {
			return fmt.Errorf("listing %q keys: %w", prefix, err)
		}
		var del [][]byte
		for _, k := range got.Keys {
			if len(k) < 9 || k[0] != prefix {
				return fmt.Errorf("listing %q keys: key %x: %w", prefix, k, interfaces.ErrMalformedReply)
			}
			if binary.BigEndian.Uint64(k[1:9]) >= limit {
				break
			}
			del = append(del, k)
		}
		if len(del) == 0 {
			return nil
		}
		if _, err := i.kv.KVDelete(ctx, &interfaces.KVDeleteRequest{Namespace: Namespace, Keys: del}); err != nil {
			return fmt.Errorf("deleting %d %q keys: %w", len(del), prefix, err)
		}
		if len(del) < len(got.Keys) || len(got.Keys) < pruneBatch {
			return nil
		}
	}
}

// waitPruned waits for a pass in progress (tests).
func (i *Issuer) waitPruned() { i.pruneWG.Wait() }
