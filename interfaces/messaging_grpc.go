package interfaces

//go:generate protoc --proto_path=proto --go_out=internal/proto --go_opt=paths=source_relative --go-grpc_out=internal/proto --go-grpc_opt=paths=source_relative proto/messaging/v1/messaging.proto

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	messagingv1 "github.com/sottonet/sotto/interfaces/internal/proto/messaging/v1"
)

// MessagingKind is the Messaging plugin kind, protocol sotto.messaging.v1.
// It follows the pattern described at StorageKind.
var MessagingKind = registerKind("messaging", 1, newMessagingGRPCPlugin)

// MessagingPlugin is what a messaging plugin's main passes to Serve.
func MessagingPlugin(factory func(ctx context.Context, rawConfig []byte) (Messaging, error)) Plugin {
	return Plugin{Kind: MessagingKind, Factory: func(ctx context.Context, raw []byte) (any, error) {
		m, err := factory(ctx, raw)
		if err != nil || m == nil {
			return nil, err
		}
		return m, nil
	}}
}

type messagingGRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	holder *implHolder
}

func newMessagingGRPCPlugin(h *implHolder) plugin.Plugin { return &messagingGRPCPlugin{holder: h} }

func (p *messagingGRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	p.holder.setBroker(broker)
	messagingv1.RegisterMessagingServer(s, &messagingGRPCServer{holder: p.holder})
	return nil
}

func (p *messagingGRPCPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return newMessagingGRPCClient(cc, broker), nil
}

// messagingGRPCClient implements Messaging (and Configurer) by calling a
// plugin's sotto.messaging.v1 service.
type messagingGRPCClient struct {
	configureClient
	c messagingv1.MessagingClient
}

var _ Messaging = (*messagingGRPCClient)(nil)

// newMessagingGRPCClient returns a client over an established connection.
func newMessagingGRPCClient(cc *grpc.ClientConn, broker *plugin.GRPCBroker) *messagingGRPCClient {
	return &messagingGRPCClient{configureClient: newConfigureClient(MessagingKind, cc, broker), c: messagingv1.NewMessagingClient(cc)}
}

func sessionFromWire(b []byte) (SessionID, error) {
	var id SessionID
	if len(b) != len(id) {
		return id, fmt.Errorf("%w: session ID of %d bytes, want %d", ErrInvalidArgument, len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

func (c *messagingGRPCClient) ContactCard(ctx context.Context, _ *ContactCardRequest) (*ContactCardResponse, error) {
	out, err := c.c.ContactCard(ctx, &messagingv1.ContactCardRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &ContactCardResponse{Card: out.GetCard(), Identity: out.GetIdentity()}, nil
}

func (c *messagingGRPCClient) StartSession(ctx context.Context, req *StartSessionRequest) (*StartSessionResponse, error) {
	out, err := c.c.StartSession(ctx, &messagingv1.StartSessionRequest{PeerCard: req.PeerCard, Replace: req.Replace})
	if err != nil {
		return nil, fromStatus(err)
	}
	id, err := sessionFromWire(out.GetSession())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedReply, err)
	}
	return &StartSessionResponse{Session: id, Existing: out.GetExisting()}, nil
}

func (c *messagingGRPCClient) Encrypt(ctx context.Context, req *EncryptRequest) (*EncryptResponse, error) {
	out, err := c.c.Encrypt(ctx, &messagingv1.EncryptRequest{Session: req.Session[:], Body: req.Body})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &EncryptResponse{Ciphertext: out.GetCiphertext()}, nil
}

func (c *messagingGRPCClient) Decrypt(ctx context.Context, req *DecryptRequest) (*DecryptResponse, error) {
	out, err := c.c.Decrypt(ctx, &messagingv1.DecryptRequest{Ciphertext: req.Ciphertext})
	if err != nil {
		return nil, fromStatus(err)
	}
	id, err := sessionFromWire(out.GetSession())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedReply, err)
	}
	body := out.GetBody()
	if body == nil {
		body = []byte{}
	}
	return &DecryptResponse{Session: id, PeerIdentity: out.GetPeerIdentity(), Body: body, Created: out.GetCreated()}, nil
}

func (c *messagingGRPCClient) EndSession(ctx context.Context, req *EndSessionRequest) (*EndSessionResponse, error) {
	if _, err := c.c.EndSession(ctx, &messagingv1.EndSessionRequest{Session: req.Session[:]}); err != nil {
		return nil, fromStatus(err)
	}
	return &EndSessionResponse{}, nil
}

// messagingGRPCServer serves sotto.messaging.v1 by calling a configured
// Messaging, refusing malformed wire values with ErrInvalidArgument.
type messagingGRPCServer struct {
	messagingv1.UnimplementedMessagingServer
	holder *implHolder
}

func (s *messagingGRPCServer) impl() (Messaging, error) {
	v, err := s.holder.get()
	if err != nil {
		return nil, toStatus(err)
	}
	m, ok := v.(Messaging)
	if !ok {
		return nil, toStatus(fmt.Errorf("%w: configured implementation %T is not a Messaging", ErrUnavailable, v))
	}
	return m, nil
}

func (s *messagingGRPCServer) ContactCard(ctx context.Context, _ *messagingv1.ContactCardRequest) (*messagingv1.ContactCardResponse, error) {
	m, err := s.impl()
	if err != nil {
		return nil, err
	}
	out, err := m.ContactCard(ctx, &ContactCardRequest{})
	if err != nil {
		return nil, toStatus(err)
	}
	return &messagingv1.ContactCardResponse{Card: out.Card, Identity: out.Identity}, nil
}

func (s *messagingGRPCServer) StartSession(ctx context.Context, in *messagingv1.StartSessionRequest) (*messagingv1.StartSessionResponse, error) {
	m, err := s.impl()
	if err != nil {
		return nil, err
	}
	out, err := m.StartSession(ctx, &StartSessionRequest{PeerCard: in.GetPeerCard(), Replace: in.GetReplace()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &messagingv1.StartSessionResponse{Session: out.Session[:], Existing: out.Existing}, nil
}

func (s *messagingGRPCServer) Encrypt(ctx context.Context, in *messagingv1.EncryptRequest) (*messagingv1.EncryptResponse, error) {
	m, err := s.impl()
	if err != nil {
		return nil, err
	}
	id, err := sessionFromWire(in.GetSession())
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := m.Encrypt(ctx, &EncryptRequest{Session: id, Body: in.GetBody()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &messagingv1.EncryptResponse{Ciphertext: out.Ciphertext}, nil
}

func (s *messagingGRPCServer) Decrypt(ctx context.Context, in *messagingv1.DecryptRequest) (*messagingv1.DecryptResponse, error) {
	m, err := s.impl()
	if err != nil {
		return nil, err
	}
	out, err := m.Decrypt(ctx, &DecryptRequest{Ciphertext: in.GetCiphertext()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &messagingv1.DecryptResponse{Session: out.Session[:], PeerIdentity: out.PeerIdentity, Body: out.Body, Created: out.Created}, nil
}

func (s *messagingGRPCServer) EndSession(ctx context.Context, in *messagingv1.EndSessionRequest) (*messagingv1.EndSessionResponse, error) {
	m, err := s.impl()
	if err != nil {
		return nil, err
	}
	id, err := sessionFromWire(in.GetSession())
	if err != nil {
		return nil, toStatus(err)
	}
	if _, err := m.EndSession(ctx, &EndSessionRequest{Session: id}); err != nil {
		return nil, toStatus(err)
	}
	return &messagingv1.EndSessionResponse{}, nil
}
