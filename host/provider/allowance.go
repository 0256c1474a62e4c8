package provider

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sottonet/sotto/interfaces"
)

// Allowances that survive a restart (Config.Allowances).
//
// What a client paid for is written before the Redeem that bought it is
// answered: a grant writes the client's allowance at once (one write per
// credential, not per packet). What a client spends is written in
// batches, every AllowanceFlush, one KVPut for every client whose
// allowance changed. A crash therefore loses at most the spending of the
// last AllowanceFlush: the restarted provider finds each client's
// allowance as it was at the last flush, never lower than what the
// client still had, so the client can send at most that many packets
// (AllowanceFlush × SendRate per client) it already sent once more for
// free; nothing paid for is lost. A grant whose write fails stays in
// memory (the client was charged) and goes with the next flush.

// AllowanceNamespace is the namespace of Config.Allowances the service
// keeps allowances in: key the client's peer ID, value the packets left
// (8 bytes, big-endian).
const AllowanceNamespace = "allowance"

// DefaultAllowanceFlush is how often spent packets are written.
const DefaultAllowanceFlush = time.Second

// maxPutEntries bounds the entries of one KVPut of a flush.
const maxPutEntries = 1024

// allowanceStore orders the writes of allowances: one at a time, each of
// a snapshot taken while holding mu, so a later write never carries an
// older value than an earlier one.
type allowanceStore struct {
	kv interfaces.KV
	mu sync.Mutex
}

// loadAllowances reads every stored allowance into s.allowance.
func (s *Service) loadAllowances(ctx context.Context) error {
	kv := s.store.kv
	var after []byte
	for {
		l, err := kv.KVList(ctx, &interfaces.KVListRequest{Namespace: AllowanceNamespace, After: after})
		if err != nil {
			return fmt.Errorf("provider: listing allowances: %w", err)
		}
		if len(l.Keys) == 0 {
			return nil
		}
		got, err := kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: AllowanceNamespace, Keys: l.Keys})
		if err != nil {
			return fmt.Errorf("provider: reading allowances: %w", err)
		}
		if len(got.Found) != len(l.Keys) || len(got.Values) != len(l.Keys) {
			return fmt.Errorf("provider: reading allowances: %w", interfaces.ErrMalformedReply)
		}
		s.mu.Lock()
		for i, k := range l.Keys {
			if !got.Found[i] {
				continue
			}
			if len(got.Values[i]) != 8 {
				s.log.Warn("ignoring a stored allowance of the wrong length", "bytes", len(got.Values[i]))
				continue
			}
			if n := binary.BigEndian.Uint64(got.Values[i]); n > 0 {
				s.allowance[peer.ID(k)] = n
			}
		}
		s.mu.Unlock()
		after = l.Keys[len(l.Keys)-1]
	}
}

// writeAllowances writes the current allowances of clients (under
// s.store.mu): one KVPut per maxPutEntries, zero allowances deleted.
func (s *Service) writeAllowances(ctx context.Context, clients []peer.ID) error {
	var put []interfaces.KVEntry
	var del [][]byte
	s.mu.Lock()
	for _, c := range clients {
		if n := s.allowance[c]; n > 0 {
			put = append(put, interfaces.KVEntry{Key: []byte(c), Value: binary.BigEndian.AppendUint64(nil, n)})
		} else {
			del = append(del, []byte(c))
		}
	}
	s.mu.Unlock()
	kv := s.store.kv
	for len(put) > 0 {
		n := min(len(put), maxPutEntries)
		if _, err := kv.KVPut(ctx, &interfaces.KVPutRequest{Namespace: AllowanceNamespace, Entries: put[:n]}); err != nil {
			return fmt.Errorf("provider: writing allowances: %w", err)
		}
		put = put[n:]
		s.m.allowanceWrites.Inc()
	}
	for len(del) > 0 {
		n := min(len(del), maxPutEntries)
		if _, err := kv.KVDelete(ctx, &interfaces.KVDeleteRequest{Namespace: AllowanceNamespace, Keys: del[:n]}); err != nil {
			return fmt.Errorf("provider: deleting allowances: %w", err)
		}
		del = del[n:]
		s.m.allowanceWrites.Inc()
	}
	return nil
}

// flushAllowances writes the allowances changed since the last flush.
func (s *Service) flushAllowances(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	s.mu.Lock()
	if len(s.dirty) == 0 {
		s.mu.Unlock()
		return nil
	}
	clients := make([]peer.ID, 0, len(s.dirty))
	for c := range s.dirty {
		clients = append(clients, c)
	}
	clear(s.dirty)
	s.mu.Unlock()
	if err := s.writeAllowances(ctx, clients); err != nil {
		s.mu.Lock()
		for _, c := range clients {
			s.dirty[c] = struct{}{}
		}
		s.mu.Unlock()
		return err
	}
	return nil
}

// persistGrant writes one client's allowance now (after a grant).
func (s *Service) persistGrant(ctx context.Context, client peer.ID) {
	if s.store == nil {
		return
	}
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if err := s.writeAllowances(ctx, []peer.ID{client}); err != nil {
		// The client was charged: keep the grant, write it with the next
		// flush.
		s.log.Warn("writing a granted allowance; retrying with the next flush", "peer", client, "err", err)
		s.mu.Lock()
		s.dirty[client] = struct{}{}
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	delete(s.dirty, client)
	s.mu.Unlock()
}

// allowanceLoop flushes every AllowanceFlush until the service closes.
func (s *Service) allowanceLoop() {
	defer s.bg.Done()
	t := time.NewTicker(s.cfg.AllowanceFlush)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.RequestTimeout)
			if err := s.flushAllowances(ctx); err != nil && s.ctx.Err() == nil {
				s.log.Warn("flushing allowances", "err", err)
			}
			cancel()
		}
	}
}
