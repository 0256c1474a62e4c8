package msgratchet

import (
	"context"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
	"github.com/sottonet/sotto/interfaces/plugintest"
)

// The methods of sotto.messaging.v1.Messaging (interfaces/proto/messaging/v1).
var messagingMethods = []string{"ContactCard", "StartSession", "Encrypt", "Decrypt", "EndSession"}

// Whatever request bytes reach a messaging plugin's gRPC server, it answers
// with a result or a status error that says what went wrong (never
// Unknown), and never panics: the decode of every request of the wire
// contract, over a real gRPC connection to the ratchet.
func FuzzMessagingServerWire(f *testing.F) {
	ctx := context.Background()
	r, err := Open(ctx, memkv.New(), "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	peer, err := Open(ctx, memkv.New(), "peer")
	if err != nil {
		f.Fatal(err)
	}
	card, err := peer.ContactCard(ctx, nil)
	if err != nil {
		f.Fatal(err)
	}
	start := protowire.AppendTag(nil, 1, protowire.BytesType)
	start = protowire.AppendBytes(start, card.Card)
	start = protowire.AppendTag(start, 2, protowire.VarintType)
	start = protowire.AppendVarint(start, 1)
	enc := protowire.AppendTag(nil, 1, protowire.BytesType)
	enc = protowire.AppendBytes(enc, make([]byte, 15)) // a session ID too short
	enc = protowire.AppendTag(enc, 2, protowire.BytesType)
	enc = protowire.AppendBytes(enc, []byte("body"))
	dec := protowire.AppendTag(nil, 1, protowire.BytesType)
	dec = protowire.AppendBytes(dec, []byte{cardVersion, 0, 0})
	f.Add(uint8(0), []byte{})
	f.Add(uint8(1), start)
	f.Add(uint8(2), enc)
	f.Add(uint8(3), dec)
	f.Add(uint8(4), enc[:17])
	f.Add(uint8(1), []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	conn := plugintest.Conn(f, interfaces.MessagingKind, r)
	f.Fuzz(func(t *testing.T, method uint8, raw []byte) {
		plugintest.FuzzWire(t, conn, "sotto.messaging.v1.Messaging", messagingMethods, method, raw)
	})
}
