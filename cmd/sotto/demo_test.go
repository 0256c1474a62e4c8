package main

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sottonet/sotto/internal/demo"
)

// The nodes a demo starts from the test binary act as sotto (see TestMain).
func init() { nodeEnv = []string{"SOTTOTEST_MAIN=1"} }

// runDemo runs a demo whose nodes are this test binary, and returns its
// summary and printed output.
func runDemo(t *testing.T, cfg demo.Config) (*demo.Summary, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts node processes; skipped with -short")
	}
	var out bytes.Buffer
	cfg.Binary, cfg.Env, cfg.Dir, cfg.Progress = os.Args[0], nodeEnv, t.TempDir(), &out
	cfg.Logger = slog.New(slog.NewTextHandler(&testLog{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sum, err := demo.Run(t.Context(), cfg)
	if sum != nil {
		sum.Write(&out)
	}
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	return sum, out.String()
}

type testLog struct{ t *testing.T }

func (l *testLog) Write(p []byte) (int, error) {
	l.t.Helper()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// fast rates on a small network, so the test takes seconds.
func fastDemo() demo.Config {
	return demo.Config{Layers: 2, MixesPerLayer: 2, Providers: 2,
		LambdaP: 4, LambdaL: 2, LambdaD: 1, LambdaM: 2, Mu: 20,
		Epoch: 20 * time.Second, Messages: 8, SendGap: 300 * time.Millisecond,
		DeliveryTimeout: 45 * time.Second}
}

// TestDemoDeliversEveryMessageExactlyOnce: on a small network of node
// processes every message of the plan (forward both ways, a fragmented one,
// one through a SURB mailbox, two to an offline recipient) arrives intact
// exactly once, and loops come back.
func TestDemoDeliversEveryMessageExactlyOnce(t *testing.T) {
	t.Parallel() // a network of its own (localnet_test.go, "Parallel tests")
	sum, out := runDemo(t, fastDemo())
	if err := sum.Err(); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, r := range sum.Messages {
		kinds[r.Kind] = true
		if r.Kind == "long" && r.Fragments < 2 {
			t.Errorf("the long message went in %d fragment", r.Fragments)
		}
	}
	for _, k := range []string{"forward", "long", "anonymous", "offline", "offline-anonymous"} {
		if !kinds[k] {
			t.Errorf("no %s message in the plan", k)
		}
	}
	if sum.ClientLoopsReturned == 0 || sum.MixLoopsReturned == 0 {
		t.Errorf("loops returned: client %d, mix %v; want some of each", sum.ClientLoopsReturned, sum.MixLoopsReturned)
	}
	if c := sum.CoverShare(); c <= 0 || c >= 1 {
		t.Errorf("cover share %v", c)
	}
	if !strings.Contains(out, "verdict      OK") || !strings.Contains(out, "p50") {
		t.Errorf("the summary lacks the verdict or the latency")
	}
}

// TestDemoRoutesAroundAKilledMix: a mix is killed while messages are
// sent; the clients notice (lost loops through it, or it becomes a
// suspect) and every message still arrives, the ones that went through the
// dead mix retransmitted over other paths.
func TestDemoRoutesAroundAKilledMix(t *testing.T) {
	t.Parallel() // a network of its own (localnet_test.go, "Parallel tests")
	cfg := fastDemo()
	cfg.Messages, cfg.KillMixAfter = 16, time.Second
	sum, _ := runDemo(t, cfg)
	if sum.Killed == "" {
		t.Fatal("no mix was killed")
	}
	if !sum.Noticed {
		t.Errorf("no client noticed %s down (suspects %v)", sum.Killed, sum.Suspects)
	}
	if err := sum.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d retransmissions, %d client loops lost, suspects %v", sum.Retransmissions, sum.ClientLoopsLost, sum.Suspects)
	if sum.ClientLoopsLost == 0 {
		t.Errorf("no client loop was lost with %s down", sum.Killed)
	}
}

// The command's flags reach the demo: a config it refuses fails before
// any process starts.
func TestDemoCommandRefusesABadConfig(t *testing.T) {
	cmd := rootCmd()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs([]string{"demo", "--providers", "1", "--messages", "2"})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "providers") || !strings.Contains(err.Error(), "messages") {
		t.Fatalf("sotto demo --providers 1 --messages 2: %v; want both problems named", err)
	}
}

// TestDemoWithBlindSignaturesDeliversEveryMessageAndRefusesTheFreeloader:
// with providers running pay-blindsig (as a node starts it: the builtin
// re-executed out of process, state in the storage plugin's KV), alice and
// bob obtain and spend tokens and every message arrives; carol, without a
// wallet, is refused at her provider as payment required.
func TestDemoWithBlindSignaturesDeliversEveryMessageAndRefusesTheFreeloader(t *testing.T) {
	t.Parallel() // a network of its own (localnet_test.go, "Parallel tests")
	cfg := fastDemo()
	cfg.Accounting, cfg.WaitRewards = demo.AccountingBlindsig, true
	sum, out := runDemo(t, cfg)
	if err := sum.Err(); err != nil {
		t.Fatal(err)
	}
	if sum.CredentialsObtained == 0 || sum.CredentialsSpent == 0 || sum.CredentialsSpent > sum.CredentialsObtained {
		t.Errorf("tokens obtained %d, spent %d", sum.CredentialsObtained, sum.CredentialsSpent)
	}
	if !sum.FreeloaderRefused || sum.FreeloaderRefusedPackets == 0 {
		t.Errorf("carol refused %v with %d packets refused", sum.FreeloaderRefused, sum.FreeloaderRefusedPackets)
	}
	if !strings.Contains(out, "refused as payment required") {
		t.Error("the summary does not say carol was refused")
	}
	checkMixesPaidForWork(t, sum)
	checkCostMeasured(t, sum, "pay-blindsig")
}

// checkMixesPaidForWork: under a paying design every mix's forwarded work
// reaches a ledger (each mix runs the work ledger, accounting-free), and
// the rewards report pays it a share of what the gateways collected.
func checkMixesPaidForWork(t *testing.T, sum *demo.Summary) {
	t.Helper()
	for _, tab := range sum.Rewards {
		if tab.Settlement != "work" || tab.Pool == 0 {
			continue
		}
		mixes := 0
		for _, r := range tab.Rows {
			if r.Role != "mix" {
				continue
			}
			mixes++
			if r.Forwarded == 0 || r.Amount == 0 {
				t.Errorf("epoch %d: %s forwarded %d and earns %d of the pool %d", tab.Epoch, r.Name, r.Forwarded, r.Amount, tab.Pool)
			}
		}
		if want := sum.Config.Layers * sum.Config.MixesPerLayer; mixes != want {
			t.Errorf("epoch %d lists %d mixes, want %d", tab.Epoch, mixes, want)
		}
		return
	}
	t.Fatal("no epoch with a pool to split was reported")
}

// checkCostMeasured: the summary's cost line comes from this run: the
// wallets' bytes and CPU, the providers' node and accounting plugin CPU.
func checkCostMeasured(t *testing.T, sum *demo.Summary, plugin string) {
	t.Helper()
	if !sum.CPUMeasured || sum.GatewayPackets == 0 || sum.GatewayNodeCPU == 0 || sum.ClientProcessCPU == 0 {
		t.Errorf("cost not measured: %v, %d gateway packets, node CPU %v, client CPU %v",
			sum.CPUMeasured, sum.GatewayPackets, sum.GatewayNodeCPU, sum.ClientProcessCPU)
	}
	if sum.PayCalls == 0 || sum.PayBytesSent == 0 || sum.PayBytesRecv == 0 || sum.PayCPU == 0 || sum.GatewayAccountingCPU == 0 {
		t.Errorf("payment cost not measured: %d Pay calls, %d B up, %d B down, wallet CPU %v, %s CPU %v",
			sum.PayCalls, sum.PayBytesSent, sum.PayBytesRecv, sum.PayCPU, plugin, sum.GatewayAccountingCPU)
	}
}

// TestDemoWithPaymentChannelsDeliversEveryMessage: with providers running
// pay-channels out of process (vouchers and Sotto's own ledger in the
// storage plugin's KV), alice and bob each open a channel and pay with
// vouchers, every message arrives, and carol, without a wallet, is
// refused.
func TestDemoWithPaymentChannelsDeliversEveryMessage(t *testing.T) {
	t.Parallel() // a network of its own (localnet_test.go, "Parallel tests")
	cfg := fastDemo()
	cfg.Accounting = demo.AccountingChannels
	sum, out := runDemo(t, cfg)
	if err := sum.Err(); err != nil {
		t.Fatal(err)
	}
	if sum.CredentialsObtained == 0 || sum.CredentialsSpent == 0 || sum.CredentialsSpent > sum.CredentialsObtained {
		t.Errorf("vouchers' worth opened %d, paid %d", sum.CredentialsObtained, sum.CredentialsSpent)
	}
	if !sum.FreeloaderRefused || sum.FreeloaderRefusedPackets == 0 {
		t.Errorf("carol refused %v with %d packets refused", sum.FreeloaderRefused, sum.FreeloaderRefusedPackets)
	}
	if !strings.Contains(out, "payment      channels:") {
		t.Error("the summary does not say how the clients paid")
	}
}
