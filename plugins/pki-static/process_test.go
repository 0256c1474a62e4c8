package pkistatic_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/pkitest"
	"github.com/sottonet/sotto/interfaces/plugintest"
	pkistatic "github.com/sottonet/sotto/plugins/pki-static"
)

// The plugin's own main, built as a separate executable and supervised by
// the host's plugin loader, passes the conformance suite: the whole path a
// node uses (handshake, Configure with raw JSON, gRPC, error mapping).
func TestConformanceAsAPluginProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	bin := plugintest.Build(t, "github.com/sottonet/sotto/plugins/pki-static/cmd/pki-static")
	pkitest.Run(t, func(t *testing.T) *pkitest.Harness {
		dir := t.TempDir()
		seed := sha256.Sum256([]byte("process operator"))
		key := ed25519.NewKeyFromSeed(seed[:])
		var nodes []*interfaces.SignedDescriptor
		for i := range 3 {
			nodes = append(nodes, pkitest.NewDescriptor(t, "testnet", 11, fmt.Sprint("process ", i), false))
		}
		doc, err := interfaces.NewDocument("testnet", 11, interfaces.NetworkParams{
			Hops: 3, PayloadLen: 2048, Layers: 3, Mu: 1, LambdaP: 1, LambdaL: 1, LambdaD: 1, LambdaM: 1, EpochPeriod: time.Minute,
		}, nodes)
		if err != nil {
			t.Fatal(err)
		}
		file, err := pkistatic.SignDocument(doc, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "epoch-11.sdoc"), file, 0o644); err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(pkistatic.Config{OperatorKey: hex.EncodeToString(key.Public().(ed25519.PublicKey)), Dir: dir, Network: "testnet"})
		pki := plugintest.Process(t, interfaces.PKIKind, exec.Command(bin), raw).(interfaces.PKI)
		return &pkitest.Harness{PKI: pki, Network: "testnet", Epoch: 11, Known: doc.Nodes}
	})
}
