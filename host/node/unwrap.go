package node

import (
	"errors"
	"sync"
	"time"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/sphinx"
)

// keySet is the Sphinx keys a node unwraps with, in the order they are
// tried: the current epoch's first, then the others still valid (the
// previous epoch's during its grace period, the next epoch's for senders
// whose clock runs ahead). gen changes whenever the set does.
type keySet struct {
	gen    uint64
	epochs []epoch.Epoch
	keys   []*sphinx.PrivateKey
}

// startWorkers starts the unwrap workers; the WaitGroup is done once the
// input queue is closed and drained.
func (n *Node) startWorkers() *sync.WaitGroup {
	var wg sync.WaitGroup
	for range max(1, n.cfg.Mixing.UnwrapWorkers) {
		wg.Go(n.unwrapLoop)
	}
	return &wg
}

// unwrapLoop is one unwrap worker. It keeps one Unwrapper per key, rebuilt
// when the key set changes, and one Result, so an unwrap allocates nothing.
func (n *Node) unwrapLoop() {
	var (
		gen uint64
		us  []*sphinx.Unwrapper
		eps []epoch.Epoch
		res sphinx.Result
	)
	for p := range n.in {
		if ks := n.keys.Load(); ks.gen != gen || us == nil {
			for _, u := range us {
				u.Destroy() // no copy of a retired key outlives the set
			}
			gen, eps, us = ks.gen, ks.epochs, us[:0]
			for _, k := range ks.keys {
				us = append(us, sphinx.NewUnwrapper(n.geo, k))
			}
		}
		t0 := time.Now()
		err := sphinx.ErrInvalidMAC
		for i, u := range us {
			if err = u.Unwrap(p.buf, &res); err != sphinx.ErrInvalidMAC {
				p.epoch = eps[i]
				break
			}
		}
		n.m.unwrap.Observe(time.Since(t0).Seconds())
		if err != nil {
			reason := dropInvalid
			if errors.Is(err, sphinx.ErrInvalidPayload) {
				reason = dropPayload
			}
			n.logLimited("unwrap:"+reason, "packet refused", "reason", reason, "client", p.client, "err", err)
			n.drop(p, reason)
			continue
		}
		p.tag = res.ReplayTag
		if !n.readCommands(p, &res, time.Duration(n.maxDelay.Load())) {
			continue
		}
		n.replay <- p
	}
	for _, u := range us {
		u.Destroy()
	}
}

// readCommands copies what the rest of the pipeline needs out of res. It
// drops p and returns false when the commands ask for what this node will
// not do.
func (n *Node) readCommands(p *packet, res *sphinx.Result, maxDelay time.Duration) bool {
	for _, c := range res.Commands.List {
		switch c := c.(type) {
		case *sphinx.NodeDelay:
			p.delay = time.Duration(c.Delay) * time.Millisecond
		case *sphinx.Recipient:
			p.recipient, p.rcpt = true, c.ID
		case *sphinx.MailboxDelivery:
			p.mailbox, p.mbox, p.lifetime = true, c.Mailbox, c.Lifetime
		}
	}
	if nh := res.Commands.NextHop; nh != nil {
		p.next, p.nextID = true, nh.ID
	} else {
		p.payload = res.Payload
		if sr := res.Commands.SURBReply; sr != nil {
			p.surbReply, p.surbID = true, sr.ID
		}
	}
	if maxDelay > 0 && p.delay > maxDelay {
		n.logLimited("delay", "packet refused: delay over mixing.max_delay", "delay", p.delay, "max", maxDelay)
		n.drop(p, dropDelay)
		return false
	}
	return true
}
