package pkistatic

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/plugintest"
)

// The methods of sotto.pki.v1.PKI (interfaces/proto/pki/v1).
var pkiMethods = []string{"Publish", "Document", "Evidence"}

// Whatever request bytes reach a PKI plugin's gRPC server, it answers with
// a result or a status error that says what went wrong (never Unknown), and
// never panics: the decode of every request of the wire contract, over a
// real gRPC connection to the static PKI serving one document.
func FuzzPKIServerWire(f *testing.F) {
	dir := f.TempDir()
	key := operatorKey("operator")
	writeDoc(f, dir, testDoc(f, 1, 2), key)
	p := openStatic(f, dir, key)
	epoch := protowire.AppendTag(nil, 1, protowire.VarintType)
	epoch = protowire.AppendVarint(epoch, 1)
	far := protowire.AppendTag(nil, 1, protowire.VarintType)
	far = protowire.AppendVarint(far, ^uint64(0))
	pub := protowire.AppendTag(nil, 1, protowire.BytesType)
	pub = protowire.AppendBytes(pub, []byte{1, 2, 3})
	f.Add(uint8(0), pub)
	f.Add(uint8(1), epoch)
	f.Add(uint8(1), far)
	f.Add(uint8(2), epoch)
	f.Add(uint8(1), []byte{0x08})
	conn := plugintest.Conn(f, interfaces.PKIKind, p)
	f.Fuzz(func(t *testing.T, method uint8, raw []byte) {
		plugintest.FuzzWire(t, conn, "sotto.pki.v1.PKI", pkiMethods, method, raw)
	})
}
