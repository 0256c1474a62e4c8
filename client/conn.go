// The client's link to its provider as the application sees it: dialling,
// learning the epoch clock, the connection state and its events.

package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/pkidoc"
)

// ConnState is where the client's connection to its provider is.
type ConnState uint8

const (
	// Connecting: the client has not yet reached its provider with a
	// document to route with.
	Connecting ConnState = iota + 1
	// Connected: the provider answers and the client holds a document for
	// the current epoch (or the previous one, whose descriptors carry the
	// current keys). Ready is closed.
	Connected
	// Reconnecting: the client was connected, and its provider stopped
	// answering or it has no document to route with. It retries with
	// backoff; messages sent meanwhile wait in its state and leave once it
	// is connected again.
	Reconnecting
)

func (s ConnState) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Reconnecting:
		return "reconnecting"
	}
	return fmt.Sprintf("connstate(%d)", uint8(s))
}

// Event reports the connection: Config.OnEvent gets one at every change of
// State and when the client moves to a new epoch's document; Connection
// returns the current one.
type Event struct {
	State ConnState
	// Err is why the client is not connected (the link's error, or the
	// missing document), nil when connected.
	Err error
	// Epoch is the epoch of the document the client routes with, and
	// DocumentAge how long ago the provider sent it (0 without one).
	Epoch       uint64
	DocumentAge time.Duration
	At          time.Time
}

// ErrNoClock: the client has no epoch clock and the network's documents do
// not state one (Config.Clock is needed).
var ErrNoClock = errors.New("client: the network's documents do not state its epoch clock")

// callTimeout bounds one call to the provider, so that a provider that
// stops answering without closing the link is noticed.
const callTimeout = 30 * time.Second

// link returns the provider link, or one that fails every call while the
// client has not dialled yet.
func (c *Client) link() Provider {
	if p := c.prov.Load(); p != nil {
		return *p
	}
	return noLink{}
}

type noLink struct{}

var errNoLink = errors.New("client: not connected to the provider yet")

func (noLink) Document(context.Context, uint64) ([]byte, error) { return nil, errNoLink }
func (noLink) Send(context.Context, [32]byte, []byte) error     { return errNoLink }
func (noLink) Fetch(context.Context, clientproto.MailboxRef, uint64, int) ([]clientproto.Message, error) {
	return nil, errNoLink
}
func (noLink) Ack(context.Context, clientproto.MailboxRef, []uint64) error { return errNoLink }
func (noLink) Close() error                                                { return nil }

// isLinkError tells a failure of the link (nothing answered) from a reply
// of the provider (which proves the link works).
func isLinkError(err error) bool {
	if err == nil {
		return false
	}
	var pe *clientproto.Error
	if errors.As(err, &pe) {
		return false
	}
	for _, reply := range []error{clientproto.ErrBadRequest, clientproto.ErrForbidden, clientproto.ErrNoDocument,
		clientproto.ErrPaymentRequired, clientproto.ErrBusy, clientproto.ErrInternal, clientproto.ErrUnsupported} {
		if errors.Is(err, reply) {
			return false
		}
	}
	return true
}

// observe feeds the outcome of a provider call into the connection state.
// A call cut short by the caller's own cancellation says nothing.
func (c *Client) observe(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	if !isLinkError(err) {
		err = nil
	}
	c.mu.Lock()
	c.linkErr = err
	evs := c.updateConn(time.Now())
	c.mu.Unlock()
	c.emit(evs)
}

// updateConn recomputes the connection state (under c.mu) and returns the
// events to emit.
func (c *Client) updateConn(now time.Time) []Event {
	if !c.started {
		return nil
	}
	state, why := Connected, c.linkErr
	var e uint64
	if why == nil {
		var err error
		if _, e, err = c.routeView(now); err != nil {
			why = err
		}
	}
	if why != nil {
		state = Reconnecting
		if !c.everConnected {
			state = Connecting
		}
	}
	var evs []Event
	prev := c.conn.State
	switch {
	case state != prev:
		c.conn = Event{State: state, Err: why, At: now}
		if state == Connected {
			c.conn.Epoch = e
			c.everConnected = true
			close(c.readyCh)
			if prev == Reconnecting {
				c.log.Info("provider reachable again", "epoch", e)
				c.reconnected(now)
			}
		} else if prev == Connected {
			c.readyCh = make(chan struct{})
			c.log.Warn("lost the provider; reconnecting with backoff", "err", why)
		}
		evs = append(evs, c.connection(now))
	case state == Connected && e != c.conn.Epoch:
		c.conn.Epoch = e
		evs = append(evs, c.connection(now))
	case state != Connected:
		c.conn.Err = why
	}
	return evs
}

// connection is the current Event (under c.mu).
func (c *Client) connection(now time.Time) Event {
	ev := c.conn
	ev.At = now
	if v, ok := c.docs[ev.Epoch]; ok && ev.State == Connected {
		ev.DocumentAge = now.Sub(v.fetched)
	} else if ev.State == Connected {
		if v, ok := c.docs[ev.Epoch-1]; ok {
			ev.DocumentAge = now.Sub(v.fetched)
		}
	}
	return ev
}

func (c *Client) emit(evs []Event) { notify(c.cfg.OnEvent, evs) }

// notify calls the application's callback f, if set, with each of xs
// (from the client's goroutines, never with a lock held).
func notify[T any](f func(T), xs []T) {
	if f == nil {
		return
	}
	for _, x := range xs {
		f(x)
	}
}

// Connection reports the state of the connection to the provider now.
func (c *Client) Connection() Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connection(time.Now())
}

// Ready returns a channel that is closed while the client is Connected.
// When the connection is lost, later calls return a new channel, closed
// when it is back: wait on a fresh Ready() each time.
func (c *Client) Ready() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readyCh
}

// reconnected is called (under c.mu) when the provider answers again after
// an outage. ACK deadlines and loops that ran out while the client could
// not fetch say nothing about the mixes: in-flight fragments get a fresh
// deadline and pending loops are forgotten unjudged.
func (c *Client) reconnected(now time.Time) {
	for _, m := range c.out {
		for _, f := range m.frags {
			if f.inFlight {
				f.deadline = now.Add(f.timeout)
			}
		}
	}
	for id, p := range c.loops {
		if !p.bodyBack || !p.ackBack {
			delete(c.loops, id)
		}
	}
}

// clock returns the epoch clock; ok is false while the client has not
// learned it yet.
func (c *Client) clock() (epoch.Clock, bool) {
	if p := c.clk.Load(); p != nil {
		return *p, true
	}
	return epoch.Clock{}, false
}

// Clock returns the network's epoch clock, and false while the client
// does not know it yet (Config.Clock was zero, the Store held none, and
// Connect has not learned it).
func (c *Client) Clock() (epoch.Clock, bool) { return c.clock() }

// clk0 is the clock for code that runs only once it is known (after the
// first document).
func (c *Client) clk0() epoch.Clock {
	clk, _ := c.clock()
	return clk
}

// Connect dials the provider (with Config.Dial, unless the client has a
// link already), learns the network's epoch clock from the provider's
// current document if the client does not know it yet (checking it
// otherwise) and fetches the document to route with. It returns
// ErrWrongClock if the network runs on another clock than the client's,
// ErrNoClock if neither states one, and otherwise the failure to reach
// the provider. Run does all of this itself, retrying with backoff;
// calling Connect first surfaces setup errors to the application at once.
func (c *Client) Connect(ctx context.Context) error {
	err := c.connect(ctx)
	if err == nil {
		c.mu.Lock()
		c.linkErr = nil
		c.mu.Unlock()
	}
	return err
}

func (c *Client) connect(ctx context.Context) error {
	if c.prov.Load() == nil {
		dctx, cancel := context.WithTimeout(ctx, callTimeout)
		p, err := c.cfg.Dial(dctx, c.cfg.Identity)
		cancel()
		if err != nil {
			c.mu.Lock()
			c.linkErr = err
			c.mu.Unlock()
			return fmt.Errorf("client: reaching the provider: %w", err)
		}
		if !c.prov.CompareAndSwap(nil, &p) {
			_ = p.Close()
		}
	}
	if _, ok := c.clock(); !ok {
		if err := c.learnClock(ctx); err != nil {
			return err
		}
	}
	e := c.clk0().Now()
	_, err := c.fetchDocument(ctx, e)
	if err != nil && e > 0 && !errors.Is(err, ErrWrongClock) {
		if _, perr := c.fetchDocument(ctx, e-1); perr == nil || errors.Is(perr, ErrWrongClock) {
			if perr == nil {
				// Routing on the previous epoch's document (its
				// descriptors carry this epoch's keys) until the
				// document loop fetches the current one: say why, or
				// later errors name epoch e-1 with nothing about e.
				c.log.Info("using the previous epoch's PKI document for now", "epoch", e-1, "current", e, "reason", err)
			}
			err = perr
		}
	}
	return err
}

// learnClock takes the epoch clock from the provider's current document
// (clientproto.CurrentEpoch) and keeps it in the state.
func (c *Client) learnClock(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	raw, err := c.link().Document(cctx, clientproto.CurrentEpoch)
	cancel()
	c.observe(ctx, err)
	if err != nil {
		return fmt.Errorf("client: the provider's current document: %w", err)
	}
	doc, err := pkidoc.ParseDocument(raw)
	if err != nil {
		return fmt.Errorf("client: the provider's current document: %w", err)
	}
	p := &doc.Params
	if !p.HasClock() {
		return fmt.Errorf("%w (network %q): set Config.Clock", ErrNoClock, doc.Network)
	}
	clk, err := epoch.New(p.Genesis, p.EpochPeriod, p.EpochGrace)
	if err != nil {
		return fmt.Errorf("%w: the document states %v", ErrNoClock, err)
	}
	now := time.Now()
	if e := clk.At(now); e != doc.Epoch && e != doc.Epoch+1 && e+1 != doc.Epoch {
		return fmt.Errorf("client: the provider is in epoch %d, which this machine's clock puts at %v (now epoch %d): check the system time",
			doc.Epoch, clk.Start(doc.Epoch), e)
	}
	if !c.clk.CompareAndSwap(nil, &clk) {
		return nil
	}
	c.log.Info("learned the network's epoch clock", "genesis", p.Genesis, "period", p.EpochPeriod, "grace", p.EpochGrace)
	c.mu.Lock()
	c.changed()
	c.mu.Unlock()
	return c.persist()
}
