package blindsig

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
	"github.com/sottonet/sotto/interfaces/plugintest"
	"github.com/sottonet/sotto/plugins/pay-blindsig/token"
)

// Any config bytes are accepted or refused with an error wrapping
// ErrInvalidArgument; never a panic.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{``, `{"free_tokens_per_epoch": 1000}`, `{"policy":"gold"}`, `{"policy":"voucher"}`,
		`{"voucher_keys":["zz"]}`, `{"max_batch":200}`, `{"unknown":1}`, `{"key_epochs":2000000}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if _, err := ParseConfig(raw); err != nil && !errors.Is(err, interfaces.ErrInvalidArgument) {
			t.Fatalf("ParseConfig error %v does not wrap ErrInvalidArgument", err)
		}
	})
}

// The methods of sotto.accounting.v1.Accounting (interfaces/proto/accounting/v1).
var accountingMethods = []string{"Info", "Issue", "Redeem", "RecordWork", "Earnings"}

// Whatever request bytes reach an accounting plugin's gRPC server, it
// answers with a result or a status error that says what went wrong (never
// Unknown), and never panics: the decode of every request of the wire
// contract, over a real gRPC connection to the blind-signature issuer.
func FuzzAccountingServerWire(f *testing.F) {
	epoch := protowire.AppendTag(nil, 1, protowire.VarintType)
	epoch = protowire.AppendVarint(epoch, 1)
	issue := protowire.AppendTag(epoch, 2, protowire.BytesType)
	issue = protowire.AppendBytes(issue, (&token.IssueRequest{KeyPeriod: 1, Blinded: [][]byte{{1, 2, 3}}}).Marshal())
	issue = protowire.AppendTag(issue, 3, protowire.BytesType)
	issue = protowire.AppendBytes(issue, make([]byte, 31)) // a client key too short
	redeem := protowire.AppendTag(epoch, 2, protowire.BytesType)
	redeem = protowire.AppendBytes(redeem, make([]byte, 32))
	redeem = protowire.AppendTag(redeem, 3, protowire.BytesType)
	redeem = protowire.AppendBytes(redeem, []byte{0xff})
	redeem = protowire.AppendTag(redeem, 4, protowire.VarintType)
	redeem = protowire.AppendVarint(redeem, ^uint64(0))
	rec := protowire.AppendTag(nil, 1, protowire.BytesType)
	rec = protowire.AppendBytes(rec, make([]byte, 33))
	rec = protowire.AppendTag(rec, 2, protowire.VarintType)
	rec = protowire.AppendVarint(rec, 99)
	work := protowire.AppendTag(epoch, 3, protowire.BytesType)
	work = protowire.AppendBytes(work, rec)
	f.Add(uint8(0), []byte{})
	f.Add(uint8(0), epoch)
	f.Add(uint8(1), issue)
	f.Add(uint8(2), redeem)
	f.Add(uint8(3), work)
	f.Add(uint8(4), []byte{0xff, 0xff})
	kv := memkv.New()
	seed(f, kv, Namespace)
	a := openOn(f, kv, testConfig())
	conn := plugintest.Conn(f, interfaces.AccountingKind, a)
	f.Fuzz(func(t *testing.T, method uint8, raw []byte) {
		plugintest.FuzzWire(t, conn, "sotto.accounting.v1.Accounting", accountingMethods, method, raw)
	})
}
