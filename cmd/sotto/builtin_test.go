package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sottonet/sotto/host/plugin"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
)

// Started by the host under test as `<test binary> plugin NAME`, or by a
// test with SOTTOTEST_MAIN=1 in its environment (a node process of
// internal/localnet), the test binary behaves as sotto does.
func TestMain(m *testing.M) {
	if (len(os.Args) == 3 && os.Args[1] == "plugin") || os.Getenv("SOTTOTEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	if code == 0 {
		code = verifyNoLeaks()
	}
	os.Exit(code)
}

// verifyNoLeaks is goleak.VerifyTestMain's check with a longer patience:
// this package's tests start dozens of libp2p hosts, in-process commands
// and HTTP clients, and on a loaded machine their goroutines may take
// longer to end than goleak's own half a second of retries.
func verifyNoLeaks() int {
	http.DefaultClient.CloseIdleConnections()
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = goleak.Find(); err == nil {
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
	return 1
}

// Every built-in plugin is reachable through `sotto plugin NAME`.
func TestBuiltinStorageBadgerServesOverReExec(t *testing.T) {
	raw, _ := json.Marshal(map[string]any{"dir": t.TempDir()})
	p, err := plugin.Start(t.Context(), plugin.Config{Kind: "storage", Builtin: "storage-badger", RawConfig: raw},
		plugin.Options{Self: os.Args[0]})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s := p.Storage()
	var box interfaces.MailboxID
	if _, err := s.AppendMailbox(t.Context(), &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{
		{Mailbox: box, Payload: []byte("hello"), Lifetime: time.Minute},
	}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.FetchMailbox(t.Context(), &interfaces.FetchMailboxRequest{Mailbox: box})
	if err != nil || len(got.Entries) != 1 || string(got.Entries[0].Payload) != "hello" {
		t.Fatalf("fetch = %+v, %v; want the appended message", got, err)
	}
}

func TestBuiltinMsgRatchetServesOverReExecOnTheHostKV(t *testing.T) {
	kv := memkv.New()
	start := func() *plugin.Plugin {
		p, err := plugin.Start(t.Context(), plugin.Config{Kind: "messaging", Builtin: "msg-ratchet", RawConfig: []byte(`{"namespace":"alice"}`)},
			plugin.Options{Self: os.Args[0], Host: &interfaces.Host{Slot: "messaging", KV: kv}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := start()
	c1, err := p.Messaging().ContactCard(t.Context(), &interfaces.ContactCardRequest{})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	p = start() // its state is in the host KV: the same identity
	defer p.Close()
	c2, err := p.Messaging().ContactCard(t.Context(), &interfaces.ContactCardRequest{})
	if err != nil || !bytes.Equal(c1.Identity, c2.Identity) {
		t.Fatalf("after a restart: identity %x, want %x (%v)", c2.Identity, c1.Identity, err)
	}
}

func TestUnknownBuiltinIsAnError(t *testing.T) {
	cmd := rootCmd()
	cmd.SetArgs([]string{"plugin", "no-such-plugin"})
	cmd.SetErr(new(nopWriter))
	if err := cmd.Execute(); err == nil {
		t.Fatal("sotto plugin no-such-plugin succeeded")
	}
}

type nopWriter struct{}

func (*nopWriter) Write(p []byte) (int, error) { return len(p), nil }
