package plugin

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/plugintest"
	"github.com/sottonet/sotto/plugins/pay-blindsig/token"
	"github.com/sottonet/sotto/plugins/pay-channels/voucher"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
)

// BenchmarkPaymentRatios measures what blind-signature payment costs a
// gateway, against the work every packet costs it anyway (one Sphinx
// unwrap), interleaved in one run so that the load of a shared machine
// falls on all alike (the medians of each call's own time are compared,
// as in core/sphinx's BenchmarkRatios). Each iteration times:
//
//   - one Sphinx Unwrap of the default geometry;
//
//   - obtaining one token as a client does (blind, the provider's Issue,
//     unblind and check), and the client's own share (blind and unblind);
//
//   - one Redeem of it, through the pay-blindsig binary out of process,
//     its spent record written to a Badger store with SyncWrites on (the
//     node's durable default) over the host KV.
//
//   - one Redeem of a payment-channel voucher paying for 100 packets,
//     through the pay-channels binary out of process on the same store
//     (the channel read from Sotto's ledger, the newest voucher read and
//     replaced by compare-and-swap), and the client's signing of it.
//
// The per-packet costs divide a token's by the packets it buys (100).
// Both wall-clock time and CPU time are taken, over batches of 40 calls
// of one kind: CPU as the run time of every thread (/proc/PID/task/*/
// schedstat, in ns) of this process (the host: its gRPC side, Badger and
// its background work) and of the plugin process, summed; nothing else
// runs in them meanwhile, so what ran during a batch is the batch's. The
// wall time of a Redeem includes the fsync it waits for, which costs no
// CPU: the CPU ratios are the ones the 2% target is about. Linux only
// (skipped elsewhere).
//
//	go test -run '^$' -bench PaymentRatios -benchtime 20x ./host/plugin/
func BenchmarkPaymentRatios(b *testing.B) {
	bin := plugintest.Build(b, "github.com/sottonet/sotto/plugins/pay-blindsig/cmd/pay-blindsig")
	chBin := plugintest.Build(b, "github.com/sottonet/sotto/plugins/pay-channels/cmd/pay-channels")
	// durable: SyncWrites on, as a node runs; nosync: the same without the
	// fsync, to show what durability costs.
	b.Run("durable", func(b *testing.B) { paymentRatios(b, bin, chBin, true) })
	b.Run("nosync", func(b *testing.B) { paymentRatios(b, bin, chBin, false) })
}

func paymentRatios(b *testing.B, bin, chBin string, sync bool) {
	cfg := storagebadger.DefaultConfig(b.TempDir())
	cfg.SyncWrites = sync
	store, err := storagebadger.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	p, err := Start(b.Context(), Config{Name: "accounting", Kind: "accounting", Path: bin,
		RawConfig: []byte(`{"free_tokens_per_epoch": 1000000000}`)},
		Options{Host: &interfaces.Host{Slot: "accounting", KV: interfaces.SlotKV(store, "accounting")}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	acc := p.Accounting()
	ctx := b.Context()
	chp, err := Start(b.Context(), Config{Name: "accounting-channels", Kind: "accounting", Path: chBin,
		RawConfig: []byte(`{"max_deposit": 1000000000000000}`)},
		Options{Host: &interfaces.Host{Slot: "accounting-channels", KV: interfaces.SlotKV(store, "accounting-channels")}})
	if err != nil {
		b.Fatal(err)
	}
	defer chp.Close()
	chAcc := chp.Accounting()
	ch := openBenchChannel(b, chAcc)
	info, err := acc.Info(ctx, &interfaces.AccountingInfoRequest{Epoch: 1})
	if err != nil {
		b.Fatal(err)
	}
	params, err := token.ParseParams(info.Params)
	if err != nil {
		b.Fatal(err)
	}
	perToken := float64(params.PacketsPerToken)

	g := sphinx.DefaultGeometry()
	var path []sphinx.PathHop
	var first *sphinx.PrivateKey
	for i := range 5 {
		k, err := sphinx.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			first = k
		}
		hop := sphinx.PathHop{PublicKey: k.PublicKey()}
		hop.ID[0] = byte(i + 1)
		if i < 4 {
			hop.Commands = []sphinx.Command{&sphinx.NodeDelay{Delay: 100}}
		} else {
			hop.Commands = []sphinx.Command{&sphinx.Recipient{}}
		}
		path = append(path, hop)
	}
	pkt, err := sphinx.NewPacket(rand.Reader, g, path, make([]byte, g.ForwardPayloadLength))
	if err != nil {
		b.Fatal(err)
	}
	u := sphinx.NewUnwrapper(g, first)
	var res sphinx.Result
	work := make([]byte, len(pkt))
	client := interfaces.ClientKey{1}
	pid := p.Pid()
	if _, err := cpuNS(pid); err != nil {
		b.Skipf("no per-thread CPU times: %v", err)
	}
	cpu := func() time.Duration {
		self, err := cpuNS(os.Getpid())
		if err != nil {
			b.Fatal(err)
		}
		plug, err := cpuNS(pid)
		if err != nil {
			b.Fatal(err)
		}
		chPlug, err := cpuNS(chp.Pid())
		if err != nil {
			b.Fatal(err)
		}
		return self + plug + chPlug
	}

	// Each iteration times a batch of k calls of each kind, reading the
	// CPU times only around a batch (a read costs ≈ 1 ms of CPU itself,
	// which stays small beside k calls, and is subtracted).
	const k = 40
	// The processes' background (Badger's goroutines, the runtime) runs
	// also while nothing is asked of them: its rate, measured over an idle
	// pause in every iteration, is taken out of each batch's CPU time.
	// A read of the CPU times costs CPU itself (≈ 1 ms: a file per
	// thread): the median of back-to-back reads is taken out too.
	var reads []time.Duration
	for range 32 {
		c0 := cpu()
		reads = append(reads, cpu()-c0)
	}
	readCost := slices.Sorted(slices.Values(reads))[len(reads)/2]
	var bgRate float64 // CPU ns per wall ns
	measure := func(f func()) (wall, cpuTime time.Duration) {
		c0 := cpu()
		t0 := time.Now()
		for range k {
			f()
		}
		t1 := time.Now()
		c := cpu() - c0 - readCost - time.Duration(bgRate*float64(t1.Sub(t0)))
		return t1.Sub(t0) / k, c / k
	}
	var bgs []float64
	var du, dIssue, dClient, dRedeem []time.Duration // wall, per call
	var cu, cIssue, cClient, cRedeem []time.Duration // CPU, per call
	var dVoucher, dSign, cVoucher, cSign []time.Duration
	for b.Loop() {
		c0, t0 := cpu(), time.Now()
		time.Sleep(20 * time.Millisecond)
		bgs = append(bgs, float64(cpu()-c0-readCost)/float64(time.Since(t0)))
		sorted := slices.Sorted(slices.Values(bgs))
		bgRate = sorted[len(sorted)/2]
		w, c := measure(func() {
			copy(work, pkt)
			if err := u.Unwrap(work, &res); err != nil {
				b.Fatal(err)
			}
		})
		du, cu = append(du, w), append(cu, c)
		var pend []*token.Pending
		w1, c1 := measure(func() {
			pt, err := token.Blind(rand.Reader, params)
			if err != nil {
				b.Fatal(err)
			}
			pend = append(pend, pt)
		})
		var sigs [][]byte
		w, c = measure(func() {
			r, err := acc.Issue(ctx, &interfaces.IssueRequest{Epoch: 1, Client: client,
				Request: (&token.IssueRequest{KeyPeriod: params.KeyPeriod, Blinded: [][]byte{pend[len(sigs)].Blinded}}).Marshal()})
			if err != nil {
				b.Fatal(err)
			}
			sigs = append(sigs, r.Response)
		})
		dIssue, cIssue = append(dIssue, w), append(cIssue, c)
		var toks [][]byte
		w2, c2 := measure(func() {
			t, err := pend[len(toks)].Finalize(sigs[len(toks)])
			if err != nil {
				b.Fatal(err)
			}
			toks = append(toks, t.Marshal())
		})
		dClient, cClient = append(dClient, w1+w2), append(cClient, c1+c2)
		n := 0
		w, c = measure(func() {
			g, err := acc.Redeem(ctx, &interfaces.RedeemRequest{Epoch: 1, Credential: toks[n], Packets: uint64(perToken), Client: client})
			if err != nil || g.Granted != uint64(perToken) {
				b.Fatalf("redeem: %+v, %v", g, err)
			}
			n++
		})
		dRedeem, cRedeem = append(dRedeem, w), append(cRedeem, c)
		var vs [][]byte
		w, c = measure(func() { vs = append(vs, ch.next()) })
		dSign, cSign = append(dSign, w), append(cSign, c)
		n = 0
		w, c = measure(func() {
			g, err := chAcc.Redeem(ctx, &interfaces.RedeemRequest{Epoch: 1, Credential: vs[n], Packets: uint64(perToken), Client: client})
			if err != nil || g.Granted != uint64(perToken) {
				b.Fatalf("redeem of a voucher: %+v, %v", g, err)
			}
			n++
		})
		dVoucher, cVoucher = append(dVoucher, w), append(cVoucher, c)
	}
	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2])
	}
	report := func(kind string, u, redeem, issue, client []time.Duration) {
		mu, mr, mi, mc := med(u), med(redeem), med(issue), med(client)
		b.ReportMetric(mu, kind+"-unwrap-ns")
		b.ReportMetric(mr/mu, kind+"-redeem/unwrap")
		b.ReportMetric(mi/mu, kind+"-issue/unwrap")
		b.ReportMetric(mc/mu, kind+"-obtain-client/unwrap")
		b.ReportMetric((mi+mc)/mu, kind+"-obtain/unwrap")
		// The payment share of a gateway's work per packet, against one
		// unwrap: Redeem alone, and Redeem and Issue (the provider issues).
		b.ReportMetric(100*(mr/perToken)/(mu+mr/perToken), kind+"-redeem-%/packet")
		pay := (mr + mi) / perToken
		b.ReportMetric(100*pay/(mu+pay), kind+"-redeem+issue-%/packet")
	}
	b.ReportMetric(bgRate, "background-cpu/wall")
	b.ReportMetric(float64(readCost), "cpu-read-ns")
	report("wall", du, dRedeem, dIssue, dClient)
	report("cpu", cu, cRedeem, cIssue, cClient)
	// Payment channels beside them: a voucher per 100 packets.
	for _, m := range []struct {
		kind            string
		u, redeem, sign []time.Duration
	}{{"wall", du, dVoucher, dSign}, {"cpu", cu, cVoucher, cSign}} {
		mu, mr, ms := med(m.u), med(m.redeem), med(m.sign)
		b.ReportMetric(mr/mu, m.kind+"-channels-redeem/unwrap")
		b.ReportMetric(ms/mu, m.kind+"-channels-sign/unwrap")
		b.ReportMetric(100*(mr/perToken)/(mu+mr/perToken), m.kind+"-channels-redeem-%/packet")
	}
}

// benchChannel is a client's channel to the benchmark's pay-channels
// provider, opened through Issue; next signs its next voucher, paying for
// 100 packets at the provider's price.
type benchChannel struct {
	key   ed25519.PrivateKey
	id    [voucher.IDLen]byte
	cost  uint64
	nonce uint64
}

func openBenchChannel(b *testing.B, a interfaces.Accounting) *benchChannel {
	info, err := a.Info(b.Context(), &interfaces.AccountingInfoRequest{Epoch: 1})
	if err != nil {
		b.Fatal(err)
	}
	pp, err := voucher.ParseParams(info.Params)
	if err != nil {
		b.Fatal(err)
	}
	pub, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	o := voucher.Open{Payee: pp.Payee, Deposit: pp.MaxDeposit, Expiry: 1 + uint64(pp.MaxEpochs)}
	copy(o.Payer[:], pub)
	o.Sign(sk)
	if _, err := a.Issue(b.Context(), &interfaces.IssueRequest{Epoch: 1, Request: o.Marshal(), Client: interfaces.ClientKey{1}}); err != nil {
		b.Fatal(err)
	}
	return &benchChannel{key: sk, id: o.ID(), cost: pp.Price * 100}
}

func (c *benchChannel) next() []byte {
	c.nonce++
	v := voucher.Voucher{Channel: c.id, Nonce: c.nonce, Amount: c.nonce * c.cost}
	v.Sign(c.key)
	return v.Marshal()
}

// cpuNS is the run time of every thread of process pid so far.
func cpuNS(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no /proc/%d/task/*/schedstat", pid)
	}
	var sum time.Duration
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that ended
		}
		ns, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		if err != nil {
			return 0, err
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}
