package interfaces

//go:generate protoc --proto_path=proto --go_out=internal/proto --go_opt=paths=source_relative --go-grpc_out=internal/proto --go-grpc_opt=paths=source_relative proto/storage/v1/storage.proto

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	storagev1 "github.com/sottonet/sotto/interfaces/internal/proto/storage/v1"
)

// StorageKind is the Storage plugin kind, protocol sotto.storage.v1.
//
// This file is the pattern for every kind: register the kind with its
// protocol version, a go-plugin adapter whose GRPCServer serves the kind's
// service by calling the configured implementation and whose GRPCClient
// returns a shim implementing the interface by calling the service, a
// constructor for Serve (StoragePlugin), and conversions between the Go
// types and the generated ones. The shims are unexported and the generated
// code lives in interfaces/internal/proto, so neither is part of the API a
// plugin compiles against (api_test.go fails if a generated type leaks).
var StorageKind = registerKind("storage", 1, newStorageGRPCPlugin)

// StoragePlugin is what a storage plugin's main passes to Serve: factory
// builds the implementation from the plugin's raw config.
func StoragePlugin(factory func(ctx context.Context, rawConfig []byte) (Storage, error)) Plugin {
	return Plugin{Kind: StorageKind, Factory: func(ctx context.Context, raw []byte) (any, error) {
		s, err := factory(ctx, raw)
		if err != nil || s == nil {
			return nil, err
		}
		return s, nil
	}}
}

type storageGRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	holder *implHolder
}

func newStorageGRPCPlugin(h *implHolder) plugin.Plugin { return &storageGRPCPlugin{holder: h} }

func (p *storageGRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	p.holder.setBroker(broker)
	storagev1.RegisterStorageServer(s, &storageGRPCServer{holder: p.holder})
	return nil
}

func (p *storageGRPCPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return newStorageGRPCClient(cc, broker), nil
}

// storageGRPCClient implements Storage (and Configurer) by calling a
// plugin's sotto.storage.v1 service. Errors wrapping the plugin's sentinel
// errors satisfy errors.Is; a dead plugin gives errors wrapping
// ErrUnavailable.
type storageGRPCClient struct {
	configureClient
	c storagev1.StorageClient
}

var (
	_ Storage   = (*storageGRPCClient)(nil)
	_ KVSwapper = (*storageGRPCClient)(nil)
)

// newStorageGRPCClient returns a client over an established connection.
func newStorageGRPCClient(cc *grpc.ClientConn, broker *plugin.GRPCBroker) *storageGRPCClient {
	return &storageGRPCClient{configureClient: newConfigureClient(StorageKind, cc, broker), c: storagev1.NewStorageClient(cc)}
}

func (c *storageGRPCClient) AppendMailbox(ctx context.Context, req *AppendMailboxRequest) (*AppendMailboxResponse, error) {
	in := &storagev1.AppendMailboxRequest{Messages: make([]*storagev1.MailboxMessage, len(req.Messages))}
	for i, m := range req.Messages {
		in.Messages[i] = &storagev1.MailboxMessage{Mailbox: m.Mailbox[:], Payload: m.Payload, LifetimeNs: int64(m.Lifetime)}
	}
	out, err := c.c.AppendMailbox(ctx, in)
	if err != nil {
		return nil, fromStatus(err)
	}
	if len(out.GetIds()) != len(req.Messages) {
		return nil, fmt.Errorf("%w: plugin returned %d IDs for %d messages", ErrMalformedReply, len(out.GetIds()), len(req.Messages))
	}
	return &AppendMailboxResponse{IDs: out.GetIds()}, nil
}

func (c *storageGRPCClient) ListMailbox(ctx context.Context, req *ListMailboxRequest) (*ListMailboxResponse, error) {
	out, err := c.c.ListMailbox(ctx, &storagev1.ListMailboxRequest{Mailbox: req.Mailbox[:], After: req.After, Limit: int64(req.Limit)})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &ListMailboxResponse{Entries: entriesFromProto(out.GetEntries())}, nil
}

func (c *storageGRPCClient) FetchMailbox(ctx context.Context, req *FetchMailboxRequest) (*FetchMailboxResponse, error) {
	out, err := c.c.FetchMailbox(ctx, &storagev1.FetchMailboxRequest{
		Mailbox: req.Mailbox[:], After: req.After, Limit: int64(req.Limit), MaxBytes: int64(req.MaxBytes),
	})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &FetchMailboxResponse{Entries: entriesFromProto(out.GetEntries())}, nil
}

func (c *storageGRPCClient) AckMailbox(ctx context.Context, req *AckMailboxRequest) (*AckMailboxResponse, error) {
	out, err := c.c.AckMailbox(ctx, &storagev1.AckMailboxRequest{Mailbox: req.Mailbox[:], Ids: req.IDs})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &AckMailboxResponse{Deleted: int(out.GetDeleted())}, nil
}

func (c *storageGRPCClient) InsertReplayTags(ctx context.Context, req *InsertReplayTagsRequest) (*InsertReplayTagsResponse, error) {
	tags := make([]byte, 0, len(req.Tags)*len(ReplayTag{}))
	for i := range req.Tags {
		tags = append(tags, req.Tags[i][:]...)
	}
	out, err := c.c.InsertReplayTags(ctx, &storagev1.InsertReplayTagsRequest{Epoch: req.Epoch, Tags: tags})
	if err != nil {
		return nil, fromStatus(err)
	}
	if len(out.GetSeen()) != len(req.Tags) {
		return nil, fmt.Errorf("%w: plugin answered %d flags for %d replay tags", ErrMalformedReply, len(out.GetSeen()), len(req.Tags))
	}
	return &InsertReplayTagsResponse{Seen: out.GetSeen()}, nil
}

func (c *storageGRPCClient) DropReplayEpoch(ctx context.Context, req *DropReplayEpochRequest) (*DropReplayEpochResponse, error) {
	if _, err := c.c.DropReplayEpoch(ctx, &storagev1.DropReplayEpochRequest{Epoch: req.Epoch}); err != nil {
		return nil, fromStatus(err)
	}
	return &DropReplayEpochResponse{}, nil
}

func (c *storageGRPCClient) KVPut(ctx context.Context, req *KVPutRequest) (*KVPutResponse, error) {
	in := &storagev1.KVPutRequest{Namespace: req.Namespace, Entries: make([]*storagev1.KVEntry, len(req.Entries))}
	for i, e := range req.Entries {
		in.Entries[i] = &storagev1.KVEntry{Key: e.Key, Value: e.Value, IfAbsent: e.IfAbsent, LifetimeNs: int64(e.Lifetime)}
	}
	out, err := c.c.KVPut(ctx, in)
	if err != nil {
		return nil, fromStatus(err)
	}
	if len(out.GetApplied()) != len(req.Entries) {
		return nil, fmt.Errorf("%w: plugin answered %d flags for %d entries", ErrMalformedReply, len(out.GetApplied()), len(req.Entries))
	}
	return &KVPutResponse{Applied: out.GetApplied()}, nil
}

func (c *storageGRPCClient) KVGet(ctx context.Context, req *KVGetRequest) (*KVGetResponse, error) {
	out, err := c.c.KVGet(ctx, &storagev1.KVGetRequest{Namespace: req.Namespace, Keys: req.Keys})
	if err != nil {
		return nil, fromStatus(err)
	}
	if len(out.GetFound()) != len(req.Keys) || len(out.GetValues()) != len(req.Keys) {
		return nil, fmt.Errorf("%w: plugin answered %d values for %d keys", ErrMalformedReply, len(out.GetValues()), len(req.Keys))
	}
	resp := &KVGetResponse{Values: out.GetValues(), Found: out.GetFound()}
	for i, f := range resp.Found {
		if !f {
			resp.Values[i] = nil
		} else if resp.Values[i] == nil {
			resp.Values[i] = []byte{} // proto3 cannot tell an empty value from none
		}
	}
	return resp, nil
}

func (c *storageGRPCClient) KVDelete(ctx context.Context, req *KVDeleteRequest) (*KVDeleteResponse, error) {
	if _, err := c.c.KVDelete(ctx, &storagev1.KVDeleteRequest{Namespace: req.Namespace, Keys: req.Keys}); err != nil {
		return nil, fromStatus(err)
	}
	return &KVDeleteResponse{}, nil
}

func (c *storageGRPCClient) KVList(ctx context.Context, req *KVListRequest) (*KVListResponse, error) {
	out, err := c.c.KVList(ctx, &storagev1.KVListRequest{Namespace: req.Namespace, Prefix: req.Prefix, After: req.After, Limit: int64(req.Limit)})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &KVListResponse{Keys: out.GetKeys()}, nil
}

// KVSwap implements KVSwapper by calling the plugin; a plugin whose
// Storage does not swap (or that predates the call) gives an error
// wrapping errors.ErrUnsupported.
func (c *storageGRPCClient) KVSwap(ctx context.Context, req *KVSwapRequest) (*KVSwapResponse, error) {
	in := &storagev1.KVSwapRequest{Namespace: req.Namespace, All: req.All, Entries: make([]*storagev1.KVSwapEntry, len(req.Entries))}
	for i, e := range req.Entries {
		in.Entries[i] = &storagev1.KVSwapEntry{
			Key: e.Key, Expected: e.Expected, ExpectAbsent: e.ExpectAbsent,
			Value: e.Value, Delete: e.Delete, LifetimeNs: int64(e.Lifetime),
		}
	}
	out, err := c.c.KVSwap(ctx, in)
	if status.Code(err) == codes.Unimplemented {
		return nil, fmt.Errorf("kv swap: %w: %w", errors.ErrUnsupported, fromStatus(err))
	}
	if err != nil {
		return nil, fromStatus(err)
	}
	n := len(req.Entries)
	if len(out.GetApplied()) != n || len(out.GetFound()) != n || len(out.GetCurrent()) != n {
		return nil, fmt.Errorf("%w: plugin answered %d flags for %d swap entries", ErrMalformedReply, len(out.GetApplied()), n)
	}
	resp := &KVSwapResponse{Applied: out.GetApplied(), Current: out.GetCurrent(), Found: out.GetFound()}
	for i, f := range resp.Found {
		if !f || resp.Applied[i] {
			resp.Current[i] = nil
		} else if resp.Current[i] == nil {
			resp.Current[i] = []byte{} // proto3 cannot tell an empty value from none
		}
	}
	return resp, nil
}

func entriesFromProto(in []*storagev1.MailboxEntry) []MailboxEntry {
	if len(in) == 0 {
		return nil
	}
	out := make([]MailboxEntry, len(in))
	for i, e := range in {
		out[i] = MailboxEntry{ID: e.GetId(), Size: int(e.GetSize()), Expires: time.Unix(0, e.GetExpiresUnixNs())}
		if e.GetHasPayload() {
			out[i].Payload = e.GetPayload()
			if out[i].Payload == nil {
				out[i].Payload = []byte{}
			}
		}
	}
	return out
}

func entriesToProto(in []MailboxEntry) []*storagev1.MailboxEntry {
	out := make([]*storagev1.MailboxEntry, len(in))
	for i, e := range in {
		out[i] = &storagev1.MailboxEntry{Id: e.ID, Size: int64(e.Size), ExpiresUnixNs: e.Expires.UnixNano(), Payload: e.Payload, HasPayload: e.Payload != nil}
	}
	return out
}

// storageGRPCServer serves sotto.storage.v1 by calling a configured
// Storage. It checks the wire's shapes (32-byte IDs, whole replay tags)
// and answers bad ones with ErrInvalidArgument, never a panic.
type storageGRPCServer struct {
	storagev1.UnimplementedStorageServer
	holder *implHolder
}

// newStorageGRPCServer returns a server shim calling impl, already
// configured (Serve builds its own, configured later through Lifecycle).
// The wire fuzz test drives it directly (export_test.go).
func newStorageGRPCServer(impl Storage) *storageGRPCServer {
	return &storageGRPCServer{holder: &implHolder{impl: impl}}
}

func (s *storageGRPCServer) impl() (Storage, error) {
	v, err := s.holder.get()
	if err != nil {
		return nil, toStatus(err)
	}
	st, ok := v.(Storage)
	if !ok {
		return nil, toStatus(fmt.Errorf("%w: configured implementation %T is not a Storage", ErrUnavailable, v))
	}
	return st, nil
}

func mailboxFromWire(b []byte) (MailboxID, error) {
	var id MailboxID
	if len(b) != len(id) {
		return id, fmt.Errorf("%w: mailbox ID of %d bytes, want %d", ErrInvalidArgument, len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

func (s *storageGRPCServer) AppendMailbox(ctx context.Context, in *storagev1.AppendMailboxRequest) (*storagev1.AppendMailboxResponse, error) {
	st, err := s.impl()
	if err != nil {
		return nil, err
	}
	req := &AppendMailboxRequest{Messages: make([]MailboxMessage, len(in.GetMessages()))}
	for i, m := range in.GetMessages() {
		id, err := mailboxFromWire(m.GetMailbox())
		if err != nil {
			return nil, toStatus(fmt.Errorf("message %d: %w", i, err))
		}
		req.Messages[i] = MailboxMessage{Mailbox: id, Payload: m.GetPayload(), Lifetime: time.Duration(m.GetLifetimeNs())}
	}
	out, err := st.AppendMailbox(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	return &storagev1.AppendMailboxResponse{Ids: out.IDs}, nil
}

func (s *storageGRPCServer) ListMailbox(ctx context.Context, in *storagev1.ListMailboxRequest) (*storagev1.MailboxEntries, error) {
	st, err := s.impl()
	if err != nil {
		return nil, err
	}
	id, err := mailboxFromWire(in.GetMailbox())
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := st.ListMailbox(ctx, &ListMailboxRequest{Mailbox: id, After: in.GetAfter(), Limit: int(in.GetLimit())})
	if err != nil {
		return nil, toStatus(err)
	}
	return &storagev1.MailboxEntries{Entries: entriesToProto(out.Entries)}, nil
}

func (s *storageGRPCServer) FetchMailbox(ctx context.Context, in *storagev1.FetchMailboxRequest) (*storagev1.MailboxEntries, error) {
	st, err := s.impl()
	if err != nil {
		return nil, err
	}
	id, err := mailboxFromWire(in.GetMailbox())
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := st.FetchMailbox(ctx, &FetchMailboxRequest{Mailbox: id, After: in.GetAfter(), Limit: int(in.GetLimit()), MaxBytes: int(in.GetMaxBytes())})
	if err != nil {
		return nil, toStatus(err)
	}
	return &storagev1.MailboxEntries{Entries: entriesToProto(out.Entries)}, nil
}

func (s *storageGRPCServer) AckMailbox(ctx context.Context, in *storagev1.AckMailboxRequest) (*storagev1.AckMailboxResponse, error) {
	st, err := s.impl()
	if err != nil {
		return nil, err
	}
	id, err := mailboxFromWire(in.GetMailbox())
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := st.AckMailbox(ctx, &AckMailboxRequest{Mailbox: id, IDs: in.GetIds()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &storagev1.AckMailboxResponse{Deleted: int64(out.Deleted)}, nil
}

func (s *storageGRPCServer) InsertReplayTags(ctx context.Context, in *storagev1.InsertReplayTagsRequest) (*storagev1.InsertReplayTagsResponse, error) {
	st, err := s.impl()
	if err != nil {
		return nil, err
	}
	raw := in.GetTags()
	const n = len(ReplayTag{})
	if len(raw)%n != 0 {
		return nil, toStatus(fmt.Errorf("%w: replay tags of %d bytes, not a multiple of %d", ErrInvalidArgument, len(raw), n))
	}
	req := &InsertReplayTagsRequest{Epoch: in.GetEpoch(), Tags: make([]ReplayTag, len(raw)/n)}
	for i := range req.Tags {
		copy(req.Tags[i][:], raw[i*n:])
	}
	out, err := st.InsertReplayTags(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	return &storagev1.InsertReplayTagsResponse{Seen: out.Seen}, nil
}

func (s *storageGRPCServer) DropReplayEpoch(ctx context.Context, in *storagev1.DropReplayEpochRequest) (*storagev1.DropReplayEpochResponse, error) {
	st, err := s.impl()
	if err != nil {
		return nil, err
	}
	if _, err := st.DropReplayEpoch(ctx, &DropReplayEpochRequest{Epoch: in.GetEpoch()}); err != nil {
		return nil, toStatus(err)
	}
	return &storagev1.DropReplayEpochResponse{}, nil
}

func (s *storageGRPCServer) KVPut(ctx context.Context, in *storagev1.KVPutRequest) (*storagev1.KVPutResponse, error) {
	st, err := s.impl()
	if err != nil {
		return nil, err
	}
	req := &KVPutRequest{Namespace: in.GetNamespace(), Entries: make([]KVEntry, len(in.GetEntries()))}
	for i, e := range in.GetEntries() {
		req.Entries[i] = KVEntry{Key: e.GetKey(), Value: e.GetValue(), IfAbsent: e.GetIfAbsent(), Lifetime: time.Duration(e.GetLifetimeNs())}
	}
	out, err := st.KVPut(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	return &storagev1.KVPutResponse{Applied: out.Applied}, nil
}

func (s *storageGRPCServer) KVGet(ctx context.Context, in *storagev1.KVGetRequest) (*storagev1.KVGetResponse, error) {
	st, err := s.impl()
	if err != nil {
		return nil, err
	}
	out, err := st.KVGet(ctx, &KVGetRequest{Namespace: in.GetNamespace(), Keys: in.GetKeys()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &storagev1.KVGetResponse{Values: out.Values, Found: out.Found}, nil
}

func (s *storageGRPCServer) KVDelete(ctx context.Context, in *storagev1.KVDeleteRequest) (*storagev1.KVDeleteResponse, error) {
	st, err := s.impl()
	if err != nil {
		return nil, err
	}
	if _, err := st.KVDelete(ctx, &KVDeleteRequest{Namespace: in.GetNamespace(), Keys: in.GetKeys()}); err != nil {
		return nil, toStatus(err)
	}
	return &storagev1.KVDeleteResponse{}, nil
}

func (s *storageGRPCServer) KVList(ctx context.Context, in *storagev1.KVListRequest) (*storagev1.KVListResponse, error) {
	st, err := s.impl()
	if err != nil {
		return nil, err
	}
	out, err := st.KVList(ctx, &KVListRequest{Namespace: in.GetNamespace(), Prefix: in.GetPrefix(), After: in.GetAfter(), Limit: int(in.GetLimit())})
	if err != nil {
		return nil, toStatus(err)
	}
	return &storagev1.KVListResponse{Keys: out.Keys}, nil
}

func (s *storageGRPCServer) KVSwap(ctx context.Context, in *storagev1.KVSwapRequest) (*storagev1.KVSwapResponse, error) {
	st, err := s.impl()
	if err != nil {
		return nil, err
	}
	sw, ok := st.(KVSwapper)
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "kv swap: storage %T does not offer compare-and-swap", st)
	}
	req := &KVSwapRequest{Namespace: in.GetNamespace(), All: in.GetAll(), Entries: make([]KVSwapEntry, len(in.GetEntries()))}
	for i, e := range in.GetEntries() {
		req.Entries[i] = KVSwapEntry{
			Key: e.GetKey(), Expected: e.GetExpected(), ExpectAbsent: e.GetExpectAbsent(),
			Value: e.GetValue(), Delete: e.GetDelete(), Lifetime: time.Duration(e.GetLifetimeNs()),
		}
	}
	out, err := sw.KVSwap(ctx, req)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil, status.Error(codes.Unimplemented, err.Error())
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &storagev1.KVSwapResponse{Applied: out.Applied, Current: out.Current, Found: out.Found}, nil
}
