// Package demo is `sotto demo`: it starts a whole Sotto network on
// 127.0.0.1 (internal/localnet: every mix and provider its own `sotto node`
// process, gossip PKI and Badger storage in a temporary directory, short
// epochs), runs two clients of different providers (client over
// client/p2p, as an application would), sends messages both ways (short
// ones, one longer than a packet payload, one through a receiver-anonymous
// contact's SURB mailbox, and two to a recipient that is offline when they
// are sent and fetches them after restarting from its saved state), shows
// progress while it runs, and ends with a Summary: what arrived, the
// latency, the cover traffic share, loops, and what the nodes dropped.
// Summary.Err is the verdict: every message delivered intact exactly once.
//
// The package holds the demo's logic so that tests can run it on smaller
// networks; cmd/sotto/demo.go is only its flags.
package demo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/localnet"
)

// Defaults of the Config fields left zero: they finish in well under a
// minute on two cores with every message delivered.
const (
	DefaultLayers          = 3
	DefaultMixesPerLayer   = 2
	DefaultProviders       = 2
	DefaultLambdaP         = 2  // client payload slots per second
	DefaultLambdaL         = 1  // client loops per second
	DefaultLambdaD         = 1  // client drop decoys per second
	DefaultLambdaM         = 1  // mix loops per second, per mix
	DefaultMu              = 10 // per-hop delay Exp(μ): mean 100 ms
	DefaultEpoch           = 20 * time.Second
	DefaultMessages        = 16
	DefaultSendGap         = 750 * time.Millisecond
	DefaultDeliveryTimeout = 60 * time.Second
	DefaultStartTimeout    = 90 * time.Second

	// MinMessages is the fixed part of the plan: two short forward
	// messages, a long one, one through a SURB mailbox, and two to an
	// offline recipient.
	MinMessages = 6
)

// Config is a demo run. Binary is required; the rest has defaults.
type Config struct {
	Layers, MixesPerLayer, Providers int
	LambdaP, LambdaL, LambdaD        float64
	LambdaM, Mu                      float64
	Epoch                            time.Duration

	// Messages is how many messages the plan sends (at least MinMessages).
	// With Duration set, messages are sent until Duration has passed since
	// the first one instead (the fixed part of the plan included).
	Messages int
	Duration time.Duration
	// SendGap is the pause between two messages of the online phase.
	SendGap time.Duration
	// DeliveryTimeout bounds the wait for messages to arrive after the
	// last one of a phase was sent.
	DeliveryTimeout time.Duration
	// StartTimeout bounds the wait for the nodes to route.
	StartTimeout time.Duration

	// KillMixAfter, when set, kills the first mix of layer 1 (SIGKILL)
	// that long after the first message was sent (but not before the
	// fixed part of the online plan arrived), to show the clients noticing
	// it and retransmitting over other paths.
	KillMixAfter time.Duration

	// Dir is the directory for the nodes, the clients' state and the demo's
	// log; empty: a fresh temporary directory. Keep keeps it afterwards
	// (a temporary one is removed otherwise; a given one is never removed).
	Dir  string
	Keep bool

	// Binary is the sotto executable the nodes run (`Binary node ...`),
	// with Env added to their environment.
	Binary string
	Env    []string

	// Progress receives the progress display; Live redraws a status line
	// in place (a terminal). Nil: no progress.
	Progress io.Writer
	Live     bool
	// Logger receives the demo's, the clients' and localnet's logs. Nil:
	// DIR/demo.log.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	deff := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Layers, DefaultLayers)
	def(&c.MixesPerLayer, DefaultMixesPerLayer)
	def(&c.Providers, DefaultProviders)
	def(&c.Messages, DefaultMessages)
	deff(&c.LambdaP, DefaultLambdaP)
	deff(&c.LambdaL, DefaultLambdaL)
	deff(&c.LambdaD, DefaultLambdaD)
	deff(&c.LambdaM, DefaultLambdaM)
	deff(&c.Mu, DefaultMu)
	defd(&c.Epoch, DefaultEpoch)
	defd(&c.SendGap, DefaultSendGap)
	defd(&c.DeliveryTimeout, DefaultDeliveryTimeout)
	defd(&c.StartTimeout, DefaultStartTimeout)
}

// Validate refuses a config the demo cannot run, with every reason.
func (c *Config) Validate() error {
	var errs []error
	if c.Binary == "" {
		errs = append(errs, errors.New("no sotto binary for the nodes"))
	}
	if c.Layers < 1 || c.MixesPerLayer < 1 {
		errs = append(errs, fmt.Errorf("%d layers × %d mixes: need at least one of each", c.Layers, c.MixesPerLayer))
	}
	if c.Providers < 2 {
		errs = append(errs, fmt.Errorf("%d providers: the two clients need two", c.Providers))
	}
	if c.Duration == 0 && c.Messages < MinMessages {
		errs = append(errs, fmt.Errorf("%d messages: the plan needs at least %d", c.Messages, MinMessages))
	}
	if c.KillMixAfter > 0 && c.MixesPerLayer < 2 {
		errs = append(errs, errors.New("killing a mix needs two mixes per layer, or nothing routes"))
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"λP", c.LambdaP}, {"λL", c.LambdaL}, {"λD", c.LambdaD}, {"λM", c.LambdaM}, {"μ", c.Mu}} {
		if !(r.v > 0) || math.IsInf(r.v, 0) {
			errs = append(errs, fmt.Errorf("%s = %v: want a positive rate", r.name, r.v))
		}
	}
	if c.Epoch < 10*time.Second {
		errs = append(errs, fmt.Errorf("epoch %v: at least 10s, so that documents and contacts keep up", c.Epoch))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"duration", c.Duration}, {"send gap", c.SendGap}, {"delivery timeout", c.DeliveryTimeout},
		{"start timeout", c.StartTimeout}, {"kill-mix delay", c.KillMixAfter}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("negative %s %v", d.name, d.v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

// run is one demo in progress.
type run struct {
	cfg        Config
	log        *slog.Logger
	ln         *localnet.Net
	tr         *tracker
	pr         *progress
	alice, bob *peer
	rnd        *mrand.Rand
	started    time.Time
	killed     *localnet.Node
}

// Run runs the demo until its plan is done or ctx ends (Ctrl-C), then stops
// the clients, stops the nodes gracefully (killing stragglers) and removes
// the temporary directory unless Keep. It returns the summary of what was
// measured (also when ctx ended early, then with ctx's error); the verdict
// is Summary.Err.
func Run(ctx context.Context, cfg Config) (_ *Summary, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "sotto-demo-"); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		if !cfg.Keep {
			defer os.RemoveAll(dir)
		}
	}
	cfg.Dir = dir
	log := cfg.Logger
	if log == nil {
		f, err := os.OpenFile(filepath.Join(dir, "demo.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		defer f.Close()
		log = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	r := &run{cfg: cfg, log: log, tr: newTracker(), pr: newProgress(cfg.Progress, cfg.Live),
		rnd: mrand.New(mrand.NewChaCha8(seed)), started: time.Now()}
	defer r.pr.done()

	r.pr.phase("starting %d mixes (%d layers × %d) and %d providers as node processes in %s",
		cfg.Layers*cfg.MixesPerLayer, cfg.Layers, cfg.MixesPerLayer, cfg.Providers, dir)
	ln, err := localnet.Start(ctx, localnet.Spec{
		Layers: cfg.Layers, MixesPerLayer: cfg.MixesPerLayer, Providers: cfg.Providers,
		Params: interfaces.NetworkParams{Mu: cfg.Mu, LambdaP: cfg.LambdaP, LambdaL: cfg.LambdaL,
			LambdaD: cfg.LambdaD, LambdaM: cfg.LambdaM},
		EpochPeriod: cfg.Epoch, Dir: dir, Binary: cfg.Binary, Env: cfg.Env,
		Network: "sotto-demo", Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	r.ln = ln
	defer func() {
		r.pr.phase("stopping clients and nodes")
		r.stopAll()
		if cfg.Keep {
			r.pr.phase("kept %s (node logs in */node.log, the demo's in demo.log)", dir)
		}
	}()

	sum, err := r.main(ctx)
	if sum != nil {
		sum.Elapsed = time.Since(r.started)
		sum.Interrupted = ctx.Err() != nil
		if err != nil && !sum.Interrupted {
			sum.RunErr = err
		}
	}
	return sum, err
}

func (r *run) stopAll() {
	for _, p := range []*peer{r.alice, r.bob} {
		if p != nil {
			if err := p.stop(); err != nil {
				r.log.Warn("stopping a client", "err", err)
			}
		}
	}
	if err := r.ln.Stop(10 * time.Second); err != nil {
		r.log.Warn("stopping the nodes", "err", err)
	}
}

func (r *run) main(ctx context.Context) (*Summary, error) {
	wctx, cancel := context.WithTimeout(ctx, r.cfg.StartTimeout)
	err := r.ln.Wait(wctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("demo: waiting for the network to route: %w", err)
	}
	r.pr.phase("network routing: each of the %d nodes holds a document listing all of them", len(r.ln.Nodes))

	provs := r.ln.Providers()
	newCfg := func(*peer) client.Config {
		return client.Config{Clock: r.ln.Clock, Network: r.ln.Spec.Network, FetchInterval: 500 * time.Millisecond}
	}
	if r.alice, err = newPeer("alice", provs[0], filepath.Join(r.cfg.Dir, "alice.state"), r.log, r.tr, newCfg); err != nil {
		return nil, err
	}
	if r.bob, err = newPeer("bob", provs[1], filepath.Join(r.cfg.Dir, "bob.state"), r.log, r.tr, newCfg); err != nil {
		return nil, err
	}
	for _, p := range []*peer{r.alice, r.bob} {
		if err := p.start(ctx); err != nil {
			return nil, err
		}
	}
	r.pr.phase("clients up: alice on %s, bob on %s, both sending Loopix cover traffic", provs[0].Name, provs[1].Name)

	stopStatus := r.showStatus(ctx)
	defer stopStatus()

	err = r.plan(ctx)
	sum := r.summary(context.WithoutCancel(ctx))
	if err != nil {
		return sum, err
	}
	return sum, nil
}

// showStatus redraws the status line until the returned func is called.
func (r *run) showStatus(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	every := 5 * time.Second
	if r.cfg.Live {
		every = 250 * time.Millisecond
	}
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.pr.update(r.statusLine())
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (r *run) statusLine() string {
	sent, delivered, _ := r.tr.counts()
	a, b := r.alice.stats(), r.bob.stats()
	s := addStats(a, b)
	total := s.PacketsPayload + s.PacketsLoop + s.PacketsDrop
	cover := 0.0
	if total > 0 {
		cover = 100 * float64(s.PacketsLoop+s.PacketsDrop+s.PayloadDecoys) / float64(total)
	}
	bob := "online"
	if r.bob.client() == nil {
		bob = "OFFLINE"
	}
	return fmt.Sprintf("messages %d sent, %d delivered | client packets %d (%.0f%% cover) | loops %d back, %d lost | retransmissions %d | bob %s",
		sent, delivered, total, cover, s.LoopsReturned, s.LoopsLost, s.Retransmissions, bob)
}

// plan sends the demo's messages and waits for them.
func (r *run) plan(ctx context.Context) error {
	a, b := r.alice, r.bob
	start := time.Now()
	extra := r.cfg.Messages - MinMessages
	killAt := time.Time{}
	if r.cfg.KillMixAfter > 0 {
		killAt = start.Add(r.cfg.KillMixAfter)
	}

	// Online phase: the fixed messages, then extras, one every SendGap.
	capacity, err := r.capacity()
	if err != nil {
		return err
	}
	type step func() error
	steps := []step{
		func() error { return r.sendForward(ctx, a, b, "forward", r.body("hello bob, alice here", 0)) },
		func() error { return r.sendForward(ctx, b, a, "forward", r.body("hi alice, bob here", 0)) },
		func() error {
			return r.sendForward(ctx, a, b, "long", r.body("a long letter that takes three packets", capacity*5/2))
		},
		func() error {
			return r.sendAnonymous(ctx, b, a, "anonymous", r.body("to a SURB mailbox: bob does not learn alice's provider", 0))
		},
	}
	for i := 0; ; i++ {
		if i >= len(steps) {
			more := extra > 0
			if r.cfg.Duration > 0 {
				more = time.Since(start) < r.cfg.Duration
			}
			if !more {
				break
			}
			extra--
			from, to := a, b
			if i%2 == 1 {
				from, to = b, a
			}
			size := r.rnd.IntN(capacity * 2)
			if err := r.sendForward(ctx, from, to, "forward", r.body(fmt.Sprintf("extra message %d", i+1), size)); err != nil {
				return err
			}
		} else if err := steps[i](); err != nil {
			return err
		}
		if !killAt.IsZero() && time.Now().After(killAt) && r.killed == nil && i >= len(steps)-1 {
			if err := r.killMix(ctx); err != nil {
				return err
			}
		}
		if !sleep(ctx, r.cfg.SendGap) {
			return ctx.Err()
		}
	}
	if !killAt.IsZero() && r.killed == nil {
		if !sleep(ctx, time.Until(killAt)) {
			return ctx.Err()
		}
		if err := r.killMix(ctx); err != nil {
			return err
		}
	}
	r.pr.phase("online phase sent; waiting for every message to arrive")
	r.waitDelivered(ctx)

	// Offline phase: bob hands out a fresh receiver-anonymous contact, goes
	// offline (his state saved), alice writes to both his contacts; the
	// forward message is acknowledged by bob's provider, which holds it;
	// bob comes back from his state and fetches both.
	// A client forgets its outgoing messages when it restarts (their ACKs
	// would find no one): let bob's finish first.
	r.waitAcked(ctx, 10*time.Second)
	anon, err := r.anonymousContact(ctx, b)
	if err != nil {
		return err
	}
	fwd, err := b.client().NewContact(ctx, client.ContactOptions{})
	if err != nil {
		return fmt.Errorf("demo: bob's contact: %w", err)
	}
	if err := b.stop(); err != nil {
		return err
	}
	r.pr.phase("bob went offline (state saved to %s)", filepath.Base(b.state))
	id, err := r.send(ctx, a, "bob", fwd, "offline", r.body("written while bob was offline", capacity*3/2), true)
	if err != nil {
		return err
	}
	if _, err := r.send(ctx, a, "bob", anon, "offline-anonymous", r.body("to bob's SURB mailbox while he was offline", 0), true); err != nil {
		return err
	}
	if err := r.waitFinal(ctx, id); err != nil {
		return err
	}
	if st, _ := r.tr.final(id); st == client.StateAcked {
		r.pr.phase("bob's provider acknowledged the message for offline bob: it waits in his mailbox")
	}
	if !sleep(ctx, 2*time.Second) { // the anonymous one has no ACK; let it land
		return ctx.Err()
	}
	if err := b.start(ctx); err != nil {
		return err
	}
	r.pr.phase("bob is back (identity and state reloaded); fetching his mailboxes")
	r.waitDelivered(ctx)
	r.waitAcked(ctx, 15*time.Second)
	return ctx.Err()
}

// fragmentOverhead is what HPKE (48 bytes) and the client's fragment
// header (23 bytes) take from a packet's user payload (see package client).
const fragmentOverhead = 48 + 23

// capacity is how many message bytes one packet carries on this network.
func (r *run) capacity() (int, error) {
	p := r.ln.Spec.Params
	g, err := sphinx.NewGeometry(int(p.PayloadLen), int(p.Hops)+2, true)
	if err != nil {
		return 0, fmt.Errorf("demo: geometry: %w", err)
	}
	return g.UserForwardPayloadLength - fragmentOverhead, nil
}

// body makes a message: a readable line, then random bytes up to size.
func (r *run) body(text string, size int) []byte {
	b := []byte(text)
	if size > len(b) {
		pad := make([]byte, size-len(b))
		_, _ = rand.Read(pad)
		b = append(b, pad...)
	}
	return b
}

func (r *run) sendForward(ctx context.Context, from, to *peer, kind string, body []byte) error {
	c := to.client()
	if c == nil {
		return fmt.Errorf("demo: %s is offline", to.name)
	}
	ct, err := c.NewContact(ctx, client.ContactOptions{})
	if err != nil {
		return fmt.Errorf("demo: %s's contact: %w", to.name, err)
	}
	_, err = r.send(ctx, from, to.name, ct, kind, body, false)
	return err
}

func (r *run) sendAnonymous(ctx context.Context, from, to *peer, kind string, body []byte) error {
	ct, err := r.anonymousContact(ctx, to)
	if err != nil {
		return err
	}
	_, err = r.send(ctx, from, to.name, ct, kind, body, false)
	return err
}

// anonymousContact makes a receiver-anonymous contact of p that stays
// usable for a while: near the end of an epoch it waits for the next one,
// since a contact's SURBs expire with their epoch's keys.
func (r *run) anonymousContact(ctx context.Context, p *peer) (*client.Contact, error) {
	clk := r.ln.Clock
	// The contact must outlive its use: a few seconds to send and deliver,
	// longer for the offline phase (bob stops first).
	margin := min(6*time.Second, r.cfg.Epoch/3)
	if left := clk.UntilNext(time.Now()); left < margin {
		r.pr.phase("epoch %d ends in %v: waiting for the next one before making a contact whose SURBs must outlive the send",
			clk.Now(), left.Round(100*time.Millisecond))
		if !sleep(ctx, left+500*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
	var lastErr error
	for range 20 {
		ct, err := p.client().NewContact(ctx, client.ContactOptions{Anonymous: true, SURBs: 4})
		if err == nil {
			return ct, nil
		}
		lastErr = err
		if !errors.Is(err, client.ErrNotReady) || !sleep(ctx, 500*time.Millisecond) { // the new epoch's document
			break
		}
	}
	return nil, fmt.Errorf("demo: %s's anonymous contact: %w", p.name, lastErr)
}

func (r *run) send(ctx context.Context, from *peer, to string, ct *client.Contact, kind string, body []byte, offline bool) (client.MessageID, error) {
	c := from.client()
	if c == nil {
		return client.MessageID{}, fmt.Errorf("demo: %s is offline", from.name)
	}
	id, err := c.Send(ctx, ct, body)
	if err != nil {
		return id, fmt.Errorf("demo: %s → %s (%s): %w", from.name, to, kind, err)
	}
	frags := 1
	if st, ok := c.Status(id); ok {
		frags = st.Fragments
	}
	rec := &Record{From: from.name, To: to, Kind: kind, Size: len(body), Fragments: frags, ID: id, Sent: time.Now(), Offline: offline}
	r.tr.sent(rec, body)
	r.log.Info("message sent", "n", rec.N, "from", from.name, "to", to, "kind", kind, "bytes", len(body), "fragments", frags)
	return id, nil
}

// waitDelivered waits until every message sent so far arrived, until
// every one missing failed at its sender (and a moment more), or until the
// delivery timeout.
func (r *run) waitDelivered(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.DeliveryTimeout)
	var allFailedSince time.Time
	for {
		sent, delivered, changed := r.tr.counts()
		if delivered >= sent {
			return
		}
		recs, _ := r.tr.snapshot()
		allFailed := true
		for _, rec := range recs {
			if rec.Deliveries == 0 && rec.State != client.StateFailed {
				allFailed = false
			}
		}
		switch {
		case !allFailed:
			allFailedSince = time.Time{}
		case allFailedSince.IsZero():
			allFailedSince = time.Now()
		case time.Since(allFailedSince) > 5*time.Second:
			r.pr.phase("%d messages failed at their sender", sent-delivered)
			return
		}
		if time.Now().After(deadline) {
			r.pr.phase("gave up waiting after %v: %d of %d delivered", r.cfg.DeliveryTimeout, delivered, sent)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitAcked waits up to d for every message to reach a final state at its
// sender, so that the summary shows the ACKs of the last ones.
func (r *run) waitAcked(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		recs, _ := r.tr.snapshot()
		if !slices.ContainsFunc(recs, func(rec Record) bool { return rec.State == 0 }) {
			return
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return
		}
	}
}

// waitFinal waits for a message's final state at its sender.
func (r *run) waitFinal(ctx context.Context, id client.MessageID) error {
	deadline := time.Now().Add(r.cfg.DeliveryTimeout)
	for {
		if _, ok := r.tr.final(id); ok {
			return nil
		}
		if time.Now().After(deadline) {
			r.pr.phase("no acknowledgement after %v", r.cfg.DeliveryTimeout)
			return nil
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// killMix kills the first mix of layer 1, once the messages sent so far
// arrived: the one through a SURB mailbox travels the single path its
// contact fixed, unacknowledged and never retransmitted, so a mix dying
// under it loses it for good (the receiver-anonymous mode's known
// trade-off, docs/SPEC.md "ACKs and retransmission"); what the kill shows
// is the retransmission of forward messages over other paths.
func (r *run) killMix(ctx context.Context) error {
	r.waitDelivered(ctx)
	m := r.ln.Mixes()[0]
	if err := m.Kill(); err != nil {
		return fmt.Errorf("demo: killing %s: %w", m.Name, err)
	}
	r.killed = m
	r.pr.phase("killed %s (SIGKILL): packets through it are lost until clients route around it", m.Name)
	return nil
}

// summary gathers the clients' counters and scrapes the nodes.
func (r *run) summary(ctx context.Context) *Summary {
	s := &Summary{Config: r.cfg, Dropped: map[string]float64{}}
	s.Messages, s.Unexpected = r.tr.snapshot()
	st := addStats(r.alice.stats(), r.bob.stats())
	s.PacketsPayload, s.PacketsLoop, s.PacketsDrop = st.PacketsPayload, st.PacketsLoop, st.PacketsDrop
	s.PayloadDecoys, s.Retransmissions = st.PayloadDecoys, st.Retransmissions
	s.ClientLoopsSent, s.ClientLoopsReturned, s.ClientLoopsLost, s.ClientLoopsLate = st.LoopsSent, st.LoopsReturned, st.LoopsLost, st.LoopsLate
	names := map[[32]byte]string{}
	for _, n := range r.ln.Nodes {
		names[n.ID] = n.Name
	}
	var suspects []string
	for _, p := range []*peer{r.alice, r.bob} {
		ps := p.stats()
		for _, id := range ps.Suspects {
			suspects = append(suspects, names[id])
		}
		if r.killed != nil && (ps.LostLoopMixes[r.killed.ID] > 0 || slices.Contains(ps.Suspects, r.killed.ID)) {
			s.Noticed = true
		}
	}
	slices.Sort(suspects)
	s.Suspects = slices.Compact(suspects)
	if r.killed != nil {
		s.Killed = r.killed.Name
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, n := range r.ln.Nodes {
		mf, err := n.Scrape(sctx)
		if err != nil {
			s.NotScraped = append(s.NotScraped, n.Name)
			continue
		}
		s.MixLoopsSent += localnet.Value(mf, "sotto_mix_loops_sent_total")
		s.MixLoopsReturned += localnet.Value(mf, "sotto_mix_loops_returned_total")
		s.MixLoopsLost += localnet.Value(mf, "sotto_mix_loops_lost_total")
		if f := mf["sotto_packets_dropped_total"]; f != nil {
			for _, m := range f.Metric {
				for _, lp := range m.Label {
					if lp.GetName() == "reason" && m.Counter != nil {
						s.Dropped[lp.GetValue()] += m.Counter.GetValue()
					}
				}
			}
		}
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
