package interfaces

//go:generate protoc --proto_path=proto --go_out=internal/proto --go_opt=paths=source_relative --go-grpc_out=internal/proto --go-grpc_opt=paths=source_relative proto/pki/v1/pki.proto

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	pkiv1 "github.com/sottonet/sotto/interfaces/internal/proto/pki/v1"
)

// PKIKind is the PKI plugin kind, protocol sotto.pki.v1. It follows the
// pattern of storage_grpc.go.
var PKIKind = registerKind("pki", 1, newPKIGRPCPlugin)

func init() {
	// Wire names are part of the contract: never rename one.
	registerError("pki_malformed", ErrMalformed, codes.InvalidArgument)
	registerError("pki_bad_signature", ErrBadSignature, codes.InvalidArgument)
	registerError("pki_epoch_window", ErrEpochWindow, codes.OutOfRange)
	registerError("pki_equivocation", ErrEquivocation, codes.AlreadyExists)
}

// PKIPlugin is what a PKI plugin's main passes to Serve: factory builds the
// implementation from the plugin's raw config.
func PKIPlugin(factory func(ctx context.Context, rawConfig []byte) (PKI, error)) Plugin {
	return Plugin{Kind: PKIKind, Factory: func(ctx context.Context, raw []byte) (any, error) {
		p, err := factory(ctx, raw)
		if err != nil || p == nil {
			return nil, err
		}
		return p, nil
	}}
}

type pkiGRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	holder *implHolder
}

func newPKIGRPCPlugin(h *implHolder) plugin.Plugin { return &pkiGRPCPlugin{holder: h} }

func (p *pkiGRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	p.holder.setBroker(broker)
	pkiv1.RegisterPKIServer(s, &pkiGRPCServer{holder: p.holder})
	return nil
}

func (p *pkiGRPCPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return newPKIGRPCClient(cc, broker), nil
}

// pkiGRPCClient implements PKI (and Configurer) by calling a plugin's
// sotto.pki.v1 service. It re-verifies everything the plugin returns
// (descriptor signatures, document encoding; the hash is recomputed here),
// so a buggy plugin gives errors wrapping ErrMalformedReply, never bad data.
type pkiGRPCClient struct {
	configureClient
	c pkiv1.PKIClient
}

var _ PKI = (*pkiGRPCClient)(nil)

// newPKIGRPCClient returns a client over an established connection.
func newPKIGRPCClient(cc *grpc.ClientConn, broker *plugin.GRPCBroker) *pkiGRPCClient {
	return &pkiGRPCClient{configureClient: newConfigureClient(PKIKind, cc, broker), c: pkiv1.NewPKIClient(cc)}
}

func (c *pkiGRPCClient) Publish(ctx context.Context, req *PublishRequest) (*PublishResponse, error) {
	if req == nil || req.Descriptor == nil {
		return nil, fmt.Errorf("pki: publish: %w: no descriptor", ErrInvalidArgument)
	}
	if _, err := c.c.Publish(ctx, &pkiv1.PublishRequest{SignedDescriptor: req.Descriptor.Raw}); err != nil {
		return nil, fromStatus(err)
	}
	return &PublishResponse{}, nil
}

func (c *pkiGRPCClient) Document(ctx context.Context, req *DocumentRequest) (*DocumentResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("pki: document: %w: nil request", ErrInvalidArgument)
	}
	out, err := c.c.Document(ctx, &pkiv1.DocumentRequest{Epoch: req.Epoch})
	if err != nil {
		return nil, fromStatus(err)
	}
	doc, err := ParseDocument(out.GetDocument())
	if err != nil {
		return nil, fmt.Errorf("%w: document: %w", ErrMalformedReply, err)
	}
	if doc.Epoch != req.Epoch {
		return nil, fmt.Errorf("%w: asked for epoch %d, got %d", ErrMalformedReply, req.Epoch, doc.Epoch)
	}
	h, err := doc.Hash()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedReply, err)
	}
	return &DocumentResponse{Document: doc, Hash: h}, nil
}

func (c *pkiGRPCClient) Evidence(ctx context.Context, req *EvidenceRequest) (*EvidenceResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("pki: evidence: %w: nil request", ErrInvalidArgument)
	}
	out, err := c.c.Evidence(ctx, &pkiv1.EvidenceRequest{Epoch: req.Epoch})
	if err != nil {
		return nil, fromStatus(err)
	}
	resp := &EvidenceResponse{Equivocations: make([]Equivocation, 0, len(out.GetEquivocations()))}
	for i, e := range out.GetEquivocations() {
		a, errA := ParseSignedDescriptor(e.GetA())
		b, errB := ParseSignedDescriptor(e.GetB())
		if errA != nil || errB != nil {
			return nil, fmt.Errorf("%w: evidence %d does not parse", ErrMalformedReply, i)
		}
		ev := Equivocation{A: a, B: b}
		if err := ev.Verify(); err != nil {
			return nil, fmt.Errorf("%w: evidence %d: %w", ErrMalformedReply, i, err)
		}
		resp.Equivocations = append(resp.Equivocations, ev)
	}
	return resp, nil
}

// pkiGRPCServer serves sotto.pki.v1 by calling a configured PKI. It parses
// and verifies descriptors before the implementation sees them.
type pkiGRPCServer struct {
	pkiv1.UnimplementedPKIServer
	holder *implHolder
}

func (s *pkiGRPCServer) impl() (PKI, error) {
	v, err := s.holder.get()
	if err != nil {
		return nil, toStatus(err)
	}
	p, ok := v.(PKI)
	if !ok {
		return nil, toStatus(fmt.Errorf("%w: configured implementation %T is not a PKI", ErrUnavailable, v))
	}
	return p, nil
}

func (s *pkiGRPCServer) Publish(ctx context.Context, in *pkiv1.PublishRequest) (*pkiv1.PublishResponse, error) {
	p, err := s.impl()
	if err != nil {
		return nil, err
	}
	sd, err := ParseSignedDescriptor(in.GetSignedDescriptor())
	if err != nil {
		return nil, toStatus(fmt.Errorf("pki: publish: %w", err))
	}
	if _, err := p.Publish(ctx, &PublishRequest{Descriptor: sd}); err != nil {
		return nil, toStatus(err)
	}
	return &pkiv1.PublishResponse{}, nil
}

func (s *pkiGRPCServer) Document(ctx context.Context, in *pkiv1.DocumentRequest) (*pkiv1.DocumentResponse, error) {
	p, err := s.impl()
	if err != nil {
		return nil, err
	}
	out, err := p.Document(ctx, &DocumentRequest{Epoch: in.GetEpoch()})
	if err != nil {
		return nil, toStatus(err)
	}
	if out == nil || out.Document == nil {
		return nil, toStatus(fmt.Errorf("%w: plugin returned no document", ErrUnavailable))
	}
	enc, err := out.Document.Encode()
	if err != nil {
		return nil, toStatus(fmt.Errorf("pki: plugin's document does not encode: %w", err))
	}
	return &pkiv1.DocumentResponse{Document: enc}, nil
}

func (s *pkiGRPCServer) Evidence(ctx context.Context, in *pkiv1.EvidenceRequest) (*pkiv1.EvidenceResponse, error) {
	p, err := s.impl()
	if err != nil {
		return nil, err
	}
	out, err := p.Evidence(ctx, &EvidenceRequest{Epoch: in.GetEpoch()})
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &pkiv1.EvidenceResponse{}
	if out != nil {
		for _, e := range out.Equivocations {
			if e.A == nil || e.B == nil {
				continue
			}
			resp.Equivocations = append(resp.Equivocations, &pkiv1.Equivocation{A: e.A.Raw, B: e.B.Raw})
		}
	}
	return resp, nil
}
