package node

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/host/provider"
	"github.com/sottonet/sotto/interfaces"
)

// The node is its provider service's Backend.
var _ provider.Backend = (*Node)(nil)

// newClientService builds a provider's client service.
func (n *Node) newClientService() error {
	if n.role != interfaces.RoleProvider {
		return nil
	}
	cl := n.cfg.Provider.Clients
	rate, burst, ipRate, ipBurst := n.sendRates()
	svc, err := provider.New(provider.Config{
		Backend:      n,
		Mailboxes:    n.opts.Storage,
		Accounting:   n.opts.Accounting,
		Allowances:   interfaces.SlotKV(n.opts.Storage, "provider"),
		PacketLength: n.geo.PacketLength,
		Logger:       n.log.With("service", "client"),
		Registerer:   n.reg,
		CurrentEpoch: n.clk.Now,

		MaxStreams:          cl.MaxStreams,
		MaxStreamsPerClient: cl.MaxStreamsPerClient,
		MaxStreamsPerIP:     cl.MaxStreamsPerIP,
		MaxInFlight:         cl.MaxInFlight,
		MaxRequests:         cl.MaxRequests,
		ReplyBytes:          cl.ReplyMB << 20,
		ReplyBytesPerClient: cl.ReplyMBPerClient << 20,
		ReplyBytesPerIP:     cl.ReplyMBPerIP << 20,
		FirstRequestTimeout: cl.FirstRequestTimeout,
		IdleTimeout:         cl.IdleTimeout,
		SendRate:            rate,
		SendBurst:           burst,
		SendRatePerIP:       ipRate,
		SendBurstPerIP:      ipBurst,
	})
	if err != nil {
		return fmt.Errorf("node: provider service: %w", err)
	}
	n.clients = svc
	return nil
}

// Gateway rate limits, when the config leaves them zero: a client's own
// Poisson streams send λP+λL+λD packets a second on average, so ten times
// that (and at least minSendRate) refuses no honest client, while a flood
// from one identity, or from sendRateIPClients identities at one address,
// is held to it; a burst is sendBurstSeconds of its rate.
const (
	sendRateFactor    = 10
	minSendRate       = 10
	sendRateIPClients = 16
	sendBurstSeconds  = 10
)

// sendRates are the client service's Send rate limits: the config's, or
// defaults from the client rates of the document the node started with.
func (n *Node) sendRates() (rate float64, burst int, ipRate float64, ipBurst int) {
	cl := n.cfg.Provider.Clients
	rate, burst, ipRate, ipBurst = cl.SendRate, cl.SendBurst, cl.SendRatePerIP, cl.SendBurstPerIP
	if rate == 0 {
		var sum float64
		if rt := n.routes.Load(); rt != nil {
			if er := rt.epochs[rt.current]; er != nil {
				sum = er.params.LambdaP + er.params.LambdaL + er.params.LambdaD
			}
		}
		rate = max(sendRateFactor*sum, minSendRate)
	}
	if ipRate == 0 {
		ipRate = sendRateIPClients * rate
	}
	if burst == 0 {
		burst = int(math.Ceil(sendBurstSeconds * rate))
	}
	if ipBurst == 0 {
		ipBurst = int(math.Ceil(sendBurstSeconds * ipRate))
	}
	return rate, burst, ipRate, ipBurst
}

// serveClients installs the client protocol on a provider.
func (n *Node) serveClients() {
	if n.clients != nil {
		n.host.SetStreamHandler(n.clientProtocol(), n.clients.Handle)
	}
}

func (n *Node) unserveClients() {
	if n.clients == nil {
		return
	}
	n.host.RemoveStreamHandler(n.clientProtocol())
	if err := n.clients.Close(); err != nil {
		// The last batch of spent packets was not written: clients may
		// send those packets again after the restart.
		n.log.Warn("closing the client service", "err", err)
	}
}

func (n *Node) clientProtocol() protocol.ID {
	if p := n.cfg.Provider.ClientProtocol; p != "" {
		return protocol.ID(p)
	}
	return clientproto.Protocol
}

// Forward sends a client's packet, a reply made from a SURB, unprocessed to
// its first hop, which must be a layer-0 mix of the current document.
func (n *Node) Forward(to [32]byte, pkt []byte) error {
	if n.geo == nil {
		return fmt.Errorf("%w: node not routing yet", clientproto.ErrBusy)
	}
	if len(pkt) != n.geo.PacketLength {
		return fmt.Errorf("%w: packet of %d bytes, want %d", clientproto.ErrBadRequest, len(pkt), n.geo.PacketLength)
	}
	rt := n.routes.Load()
	h := rt.layerZero(to)
	if h == nil {
		return fmt.Errorf("%w: first hop is not a layer-0 mix of epoch %d or of another epoch whose keys are valid", clientproto.ErrBadRequest, rt.current)
	}
	n.m.inClient.Inc()
	p := n.getPacket()
	copy(p.buf, pkt)
	p.recv = time.Now()
	if !n.links.send(h, p) {
		return fmt.Errorf("%w: the link to the first hop is full", clientproto.ErrBusy)
	}
	return nil
}

// Document returns the canonical encoding of the document of epoch e, from
// the node's route table when it routes with it, else from the PKI.
//
// e = clientproto.CurrentEpoch asks for the current epoch's: a client that
// does not know the network's clock yet learns it from that document
// (docs/SPEC.md, "Encodings").
func (n *Node) Document(ctx context.Context, e uint64) ([]byte, error) {
	if e == clientproto.CurrentEpoch {
		e = n.clk.Now()
	}
	if rt := n.routes.Load(); rt != nil {
		if er := rt.epochs[e]; er != nil {
			return er.raw, nil
		}
	}
	// Only epochs a client can route in go to the PKI: a client cannot
	// make the provider fetch arbitrary epochs.
	if cur := n.clk.Now(); e+1 < cur || e > cur+1 {
		return nil, fmt.Errorf("%w: epoch %d is not near the current epoch %d", clientproto.ErrNoDocument, e, cur)
	}
	resp, err := n.opts.PKI.Document(ctx, &interfaces.DocumentRequest{Epoch: e})
	if err == nil && (resp == nil || resp.Document == nil) {
		err = interfaces.ErrMalformedReply
	}
	if err != nil {
		return nil, fmt.Errorf("%w: epoch %d: %w", clientproto.ErrNoDocument, e, err)
	}
	return resp.Document.Encode()
}
