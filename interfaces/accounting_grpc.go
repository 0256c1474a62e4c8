package interfaces

//go:generate protoc --proto_path=proto --go_out=internal/proto --go_opt=paths=source_relative --go-grpc_out=internal/proto --go-grpc_opt=paths=source_relative proto/accounting/v1/accounting.proto

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	accountingv1 "github.com/sottonet/sotto/interfaces/internal/proto/accounting/v1"
)

// AccountingKind is the Accounting plugin kind, protocol sotto.accounting.v1.
// It follows the pattern described at StorageKind.
var AccountingKind = registerKind("accounting", 1, newAccountingGRPCPlugin)

// AccountingPlugin is what an accounting plugin's main passes to Serve.
func AccountingPlugin(factory func(ctx context.Context, rawConfig []byte) (Accounting, error)) Plugin {
	return Plugin{Kind: AccountingKind, Factory: func(ctx context.Context, raw []byte) (any, error) {
		a, err := factory(ctx, raw)
		if err != nil || a == nil {
			return nil, err
		}
		return a, nil
	}}
}

type accountingGRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	holder *implHolder
}

func newAccountingGRPCPlugin(h *implHolder) plugin.Plugin { return &accountingGRPCPlugin{holder: h} }

func (p *accountingGRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	p.holder.setBroker(broker)
	accountingv1.RegisterAccountingServer(s, &accountingGRPCServer{holder: p.holder})
	return nil
}

func (p *accountingGRPCPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return newAccountingGRPCClient(cc, broker), nil
}

// accountingGRPCClient implements Accounting (and Configurer) by calling a
// plugin's sotto.accounting.v1 service.
type accountingGRPCClient struct {
	configureClient
	c accountingv1.AccountingClient
}

var _ Accounting = (*accountingGRPCClient)(nil)

// newAccountingGRPCClient returns a client over an established connection.
func newAccountingGRPCClient(cc *grpc.ClientConn, broker *plugin.GRPCBroker) *accountingGRPCClient {
	return &accountingGRPCClient{configureClient: newConfigureClient(AccountingKind, cc, broker), c: accountingv1.NewAccountingClient(cc)}
}

func (c *accountingGRPCClient) Info(ctx context.Context, req *AccountingInfoRequest) (*AccountingInfoResponse, error) {
	out, err := c.c.Info(ctx, &accountingv1.InfoRequest{Epoch: req.Epoch})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &AccountingInfoResponse{Scheme: out.GetScheme(), Params: out.GetParams()}, nil
}

func (c *accountingGRPCClient) Issue(ctx context.Context, req *IssueRequest) (*IssueResponse, error) {
	out, err := c.c.Issue(ctx, &accountingv1.IssueRequest{Epoch: req.Epoch, Request: req.Request, Client: clientToWire(req.Client)})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &IssueResponse{Response: out.GetResponse()}, nil
}

func (c *accountingGRPCClient) Redeem(ctx context.Context, req *RedeemRequest) (*RedeemResponse, error) {
	out, err := c.c.Redeem(ctx, &accountingv1.RedeemRequest{Epoch: req.Epoch, Gateway: req.Gateway[:], Credential: req.Credential, Packets: req.Packets, Client: clientToWire(req.Client)})
	if err != nil {
		return nil, fromStatus(err)
	}
	if out.GetGranted() > req.Packets {
		return nil, fmt.Errorf("%w: plugin granted %d packets, %d were asked", ErrMalformedReply, out.GetGranted(), req.Packets)
	}
	return &RedeemResponse{Granted: out.GetGranted(), Receipt: out.GetReceipt()}, nil
}

func (c *accountingGRPCClient) RecordWork(ctx context.Context, req *RecordWorkRequest) (*RecordWorkResponse, error) {
	in := &accountingv1.RecordWorkRequest{Epoch: req.Epoch, BatchId: req.BatchID, Records: make([]*accountingv1.WorkRecord, len(req.Records))}
	for i, r := range req.Records {
		in.Records[i] = &accountingv1.WorkRecord{Node: r.Node[:], Kind: uint32(r.Kind), Packets: r.Packets}
	}
	if _, err := c.c.RecordWork(ctx, in); err != nil {
		return nil, fromStatus(err)
	}
	return &RecordWorkResponse{}, nil
}

func (c *accountingGRPCClient) Earnings(ctx context.Context, req *EarningsRequest) (*EarningsResponse, error) {
	out, err := c.c.Earnings(ctx, &accountingv1.EarningsRequest{Epoch: req.Epoch})
	if err != nil {
		return nil, fromStatus(err)
	}
	resp := &EarningsResponse{Unit: out.GetUnit(), Nodes: make([]NodeEarnings, len(out.GetNodes()))}
	for i, n := range out.GetNodes() {
		id, err := nodeFromWire(n.GetNode())
		if err != nil {
			return nil, fmt.Errorf("%w: earnings entry %d: %w", ErrMalformedReply, i, err)
		}
		resp.Nodes[i] = NodeEarnings{Node: id, Forwarded: n.GetForwarded(), Delivered: n.GetDelivered(), Probed: n.GetProbed(), Amount: n.GetAmount(), ProbesSent: n.GetProbesSent()}
	}
	return resp, nil
}

// clientToWire sends the zero key (no client) as no bytes.
func clientToWire(k ClientKey) []byte {
	if k == (ClientKey{}) {
		return nil
	}
	return k[:]
}

func clientFromWire(b []byte) (ClientKey, error) {
	var k ClientKey
	switch len(b) {
	case 0:
	case len(k):
		copy(k[:], b)
	default:
		return k, fmt.Errorf("%w: client key of %d bytes, want %d or none", ErrInvalidArgument, len(b), len(k))
	}
	return k, nil
}

func nodeFromWire(b []byte) (NodeID, error) {
	var id NodeID
	if len(b) != len(id) {
		return id, fmt.Errorf("%w: node ID of %d bytes, want %d", ErrInvalidArgument, len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

// accountingGRPCServer serves sotto.accounting.v1 by calling a configured
// Accounting, refusing malformed wire values with ErrInvalidArgument.
type accountingGRPCServer struct {
	accountingv1.UnimplementedAccountingServer
	holder *implHolder
}

func (s *accountingGRPCServer) impl() (Accounting, error) {
	v, err := s.holder.get()
	if err != nil {
		return nil, toStatus(err)
	}
	a, ok := v.(Accounting)
	if !ok {
		return nil, toStatus(fmt.Errorf("%w: configured implementation %T is not an Accounting", ErrUnavailable, v))
	}
	return a, nil
}

func (s *accountingGRPCServer) Info(ctx context.Context, in *accountingv1.InfoRequest) (*accountingv1.InfoResponse, error) {
	a, err := s.impl()
	if err != nil {
		return nil, err
	}
	out, err := a.Info(ctx, &AccountingInfoRequest{Epoch: in.GetEpoch()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &accountingv1.InfoResponse{Scheme: out.Scheme, Params: out.Params}, nil
}

func (s *accountingGRPCServer) Issue(ctx context.Context, in *accountingv1.IssueRequest) (*accountingv1.IssueResponse, error) {
	a, err := s.impl()
	if err != nil {
		return nil, err
	}
	client, err := clientFromWire(in.GetClient())
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := a.Issue(ctx, &IssueRequest{Epoch: in.GetEpoch(), Request: in.GetRequest(), Client: client})
	if err != nil {
		return nil, toStatus(err)
	}
	return &accountingv1.IssueResponse{Response: out.Response}, nil
}

func (s *accountingGRPCServer) Redeem(ctx context.Context, in *accountingv1.RedeemRequest) (*accountingv1.RedeemResponse, error) {
	a, err := s.impl()
	if err != nil {
		return nil, err
	}
	gw, err := nodeFromWire(in.GetGateway())
	if err != nil {
		return nil, toStatus(err)
	}
	client, err := clientFromWire(in.GetClient())
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := a.Redeem(ctx, &RedeemRequest{Epoch: in.GetEpoch(), Gateway: gw, Credential: in.GetCredential(), Packets: in.GetPackets(), Client: client})
	if err != nil {
		return nil, toStatus(err)
	}
	return &accountingv1.RedeemResponse{Granted: out.Granted, Receipt: out.Receipt}, nil
}

func (s *accountingGRPCServer) RecordWork(ctx context.Context, in *accountingv1.RecordWorkRequest) (*accountingv1.RecordWorkResponse, error) {
	a, err := s.impl()
	if err != nil {
		return nil, err
	}
	req := &RecordWorkRequest{Epoch: in.GetEpoch(), BatchID: in.GetBatchId(), Records: make([]WorkRecord, len(in.GetRecords()))}
	for i, r := range in.GetRecords() {
		id, err := nodeFromWire(r.GetNode())
		if err != nil {
			return nil, toStatus(fmt.Errorf("record %d: %w", i, err))
		}
		if r.GetKind() > 255 {
			return nil, toStatus(fmt.Errorf("%w: record %d: work kind %d", ErrInvalidArgument, i, r.GetKind()))
		}
		req.Records[i] = WorkRecord{Node: id, Kind: WorkKind(r.GetKind()), Packets: r.GetPackets()}
	}
	if _, err := a.RecordWork(ctx, req); err != nil {
		return nil, toStatus(err)
	}
	return &accountingv1.RecordWorkResponse{}, nil
}

func (s *accountingGRPCServer) Earnings(ctx context.Context, in *accountingv1.EarningsRequest) (*accountingv1.EarningsResponse, error) {
	a, err := s.impl()
	if err != nil {
		return nil, err
	}
	out, err := a.Earnings(ctx, &EarningsRequest{Epoch: in.GetEpoch()})
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &accountingv1.EarningsResponse{Unit: out.Unit, Nodes: make([]*accountingv1.NodeEarnings, len(out.Nodes))}
	for i, n := range out.Nodes {
		resp.Nodes[i] = &accountingv1.NodeEarnings{Node: n.Node[:], Forwarded: n.Forwarded, Delivered: n.Delivered, Probed: n.Probed, Amount: n.Amount, ProbesSent: n.ProbesSent}
	}
	return resp, nil
}
