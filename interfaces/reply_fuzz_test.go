package interfaces

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawReplyCodec hands the fuzzer's bytes to the host's shim as the
// plugin's reply, and swallows the request.
type rawReplyCodec struct{}

func (rawReplyCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawReplyCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append((*(v.(*[]byte)))[:0], data...)
	return nil
}
func (rawReplyCodec) Name() string { return "proto" }

var _ encoding.Codec = rawReplyCodec{}

// lyingPlugin is a gRPC server that answers every method of every service
// with the bytes in reply: a plugin that is buggy or hostile.
type lyingPlugin struct {
	mu    sync.Mutex
	reply []byte
}

func (l *lyingPlugin) handle(_ any, stream grpc.ServerStream) error {
	var in []byte
	if err := stream.RecvMsg(&in); err != nil {
		return err
	}
	l.mu.Lock()
	out := append([]byte(nil), l.reply...)
	l.mu.Unlock()
	return stream.SendMsg(&out)
}

// hostCall is one call of a host-side shim with a well-formed request.
type hostCall struct {
	name string
	call func(ctx context.Context) error
}

func hostCalls(cc *grpc.ClientConn) []hostCall {
	st := newStorageGRPCClient(cc, nil)
	pk := newPKIGRPCClient(cc, nil)
	ac := newAccountingGRPCClient(cc, nil)
	ms := newMessagingGRPCClient(cc, nil)
	mb := MailboxID{1}
	ignore := func(_ any, err error) error { return err }
	return []hostCall{
		{"AppendMailbox", func(ctx context.Context) error {
			return ignore(st.AppendMailbox(ctx, &AppendMailboxRequest{Messages: []MailboxMessage{{Mailbox: mb, Payload: []byte("p"), Lifetime: time.Minute}}}))
		}},
		{"ListMailbox", func(ctx context.Context) error {
			return ignore(st.ListMailbox(ctx, &ListMailboxRequest{Mailbox: mb, Limit: 4}))
		}},
		{"FetchMailbox", func(ctx context.Context) error {
			return ignore(st.FetchMailbox(ctx, &FetchMailboxRequest{Mailbox: mb, Limit: 4, MaxBytes: 1 << 16}))
		}},
		{"AckMailbox", func(ctx context.Context) error {
			return ignore(st.AckMailbox(ctx, &AckMailboxRequest{Mailbox: mb, IDs: []uint64{1}}))
		}},
		{"InsertReplayTags", func(ctx context.Context) error {
			return ignore(st.InsertReplayTags(ctx, &InsertReplayTagsRequest{Epoch: 1, Tags: []ReplayTag{{1}, {2}}}))
		}},
		{"KVPut", func(ctx context.Context) error {
			return ignore(st.KVPut(ctx, &KVPutRequest{Namespace: "n", Entries: []KVEntry{{Key: []byte("k"), Value: []byte("v")}}}))
		}},
		{"KVGet", func(ctx context.Context) error {
			return ignore(st.KVGet(ctx, &KVGetRequest{Namespace: "n", Keys: [][]byte{[]byte("k"), []byte("j")}}))
		}},
		{"KVList", func(ctx context.Context) error {
			return ignore(st.KVList(ctx, &KVListRequest{Namespace: "n", Limit: 4}))
		}},
		{"Document", func(ctx context.Context) error {
			return ignore(pk.Document(ctx, &DocumentRequest{Epoch: 1}))
		}},
		{"Evidence", func(ctx context.Context) error {
			return ignore(pk.Evidence(ctx, &EvidenceRequest{Epoch: 1}))
		}},
		{"Info", func(ctx context.Context) error {
			return ignore(ac.Info(ctx, &AccountingInfoRequest{Epoch: 1}))
		}},
		{"Issue", func(ctx context.Context) error {
			return ignore(ac.Issue(ctx, &IssueRequest{Epoch: 1, Request: []byte{1}}))
		}},
		{"Redeem", func(ctx context.Context) error {
			return ignore(ac.Redeem(ctx, &RedeemRequest{Epoch: 1, Gateway: NodeID{1}, Credential: []byte{1}, Packets: 10}))
		}},
		{"Earnings", func(ctx context.Context) error {
			return ignore(ac.Earnings(ctx, &EarningsRequest{Epoch: 1}))
		}},
		{"ContactCard", func(ctx context.Context) error {
			return ignore(ms.ContactCard(ctx, &ContactCardRequest{}))
		}},
		{"StartSession", func(ctx context.Context) error {
			return ignore(ms.StartSession(ctx, &StartSessionRequest{PeerCard: []byte{1}}))
		}},
		{"Encrypt", func(ctx context.Context) error {
			return ignore(ms.Encrypt(ctx, &EncryptRequest{Session: SessionID{1}, Body: []byte("b")}))
		}},
		{"Decrypt", func(ctx context.Context) error {
			return ignore(ms.Decrypt(ctx, &DecryptRequest{Ciphertext: []byte{1}}))
		}},
	}
}

// Whatever bytes a plugin answers with, the host's shims decode them into
// a result that passed the shim's checks or an error, never a panic: a
// plugin is a separate process the node does not trust to be correct. An
// answer that decodes as protobuf but breaks the contract (too few IDs, a
// document for another epoch) must be refused with ErrMalformedReply; the
// fuzzer reaches every shim method with arbitrary reply bytes over a real
// gRPC connection.
func FuzzHostDecodesPluginReplies(f *testing.F) {
	ids := protowire.AppendTag(nil, 1, protowire.BytesType)
	ids = protowire.AppendBytes(ids, []byte{1, 2, 3}) // three packed IDs for one message
	entry := protowire.AppendTag(nil, 1, protowire.VarintType)
	entry = protowire.AppendVarint(entry, 7)
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendBytes(entry, []byte("payload"))
	entries := protowire.AppendTag(nil, 1, protowire.BytesType)
	entries = protowire.AppendBytes(entries, entry)
	doc := protowire.AppendTag(nil, 1, protowire.BytesType)
	doc = protowire.AppendBytes(doc, []byte{0, 3, 0xff})
	granted := protowire.AppendTag(nil, 1, protowire.VarintType)
	granted = protowire.AppendVarint(granted, 1<<40)
	f.Add(uint8(0), []byte{})
	f.Add(uint8(0), ids)
	f.Add(uint8(2), entries)
	f.Add(uint8(8), doc)
	f.Add(uint8(12), granted)
	f.Add(uint8(6), []byte{0x0a, 0x00, 0x12, 0x01, 0x01})
	f.Add(uint8(15), []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})

	lis := bufconn.Listen(1 << 20)
	lp := &lyingPlugin{}
	srv := grpc.NewServer(grpc.UnknownServiceHandler(lp.handle), grpc.ForceServerCodec(rawReplyCodec{}))
	go func() { _ = srv.Serve(lis) }()
	cc, err := grpc.NewClient("passthrough:///lying-plugin",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		_ = cc.Close()
		srv.Stop()
	})
	calls := hostCalls(cc)
	f.Fuzz(func(t *testing.T, sel uint8, reply []byte) {
		c := calls[int(sel)%len(calls)]
		lp.mu.Lock()
		lp.reply = reply
		lp.mu.Unlock() // calls run one at a time within a fuzz worker
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := c.call(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: the shim hung on a reply: %v", c.name, err)
		}
	})
}
