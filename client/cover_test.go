package client

import (
	"math"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// captureSends runs a client whose provider records packets instead of
// routing them until it has sent n, queueing messages first messages
// before it starts. It returns the send times and the client's stats.
func captureSends(t *testing.T, seed uint64, n, messages int) ([]sentPacket, Stats, int) {
	var (
		sent  []sentPacket
		stats Stats
		size  int
	)
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		c, p := net.newClient(t, 0, seed, nil)
		p.capture = true
		size = net.g.PacketLength
		to := &Contact{Network: net.network, Key: c.MessageKey(), Provider: net.provs[1], Mailbox: [32]byte{1}}
		stop := start(t, c)
		waitReady(t, c)
		for i := range messages {
			if _, err := c.Send(t.Context(), to, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		rate := testParams().LambdaP + testParams().LambdaL + testParams().LambdaD
		for len(p.packets()) < n {
			time.Sleep(time.Duration(float64(n-len(p.packets()))/rate*float64(time.Second)) + time.Second)
		}
		stop()
		net.close()
		sent = p.packets()[:n]
		stats = c.Stats()
	})
	return sent, stats, size
}

// ksExp is the Kolmogorov–Smirnov statistic of xs against Exp(lambda).
func ksExp(xs []float64, lambda float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	n := float64(len(xs))
	var d float64
	for i, x := range xs {
		f := 1 - math.Exp(-lambda*x)
		d = max(d, math.Abs(float64(i+1)/n-f), math.Abs(f-float64(i)/n))
	}
	return d
}

func TestCoverTrafficIsOnePoissonStreamOfOneSizeWhetherOrNotTheUserSends(t *testing.T) {
	const n = 2500
	p := testParams()
	lambda := p.LambdaP + p.LambdaL + p.LambdaD
	var schedules [][]time.Time
	for _, tt := range []struct {
		name     string
		messages int
	}{{"idle", 0}, {"sending", 1200}} {
		sent, stats, size := captureSends(t, 42, n, tt.messages)
		var gaps []float64
		var times []time.Time
		for i, s := range sent {
			if s.size != size {
				t.Fatalf("%s: packet %d has %d bytes, want %d", tt.name, i, s.size, size)
			}
			times = append(times, s.at)
			if i > 0 {
				gaps = append(gaps, s.at.Sub(sent[i-1].at).Seconds())
			}
		}
		schedules = append(schedules, times)
		d := ksExp(gaps, lambda)
		crit := 1.95 / math.Sqrt(float64(len(gaps))) // α = 0.001
		if d > crit {
			t.Errorf("%s: KS statistic %.4f > %.4f: gaps do not fit Exp(%v)", tt.name, d, crit, lambda)
		}
		total := float64(stats.PacketsPayload + stats.PacketsLoop + stats.PacketsDrop)
		for _, k := range []struct {
			what string
			got  uint64
			rate float64
		}{{"payload", stats.PacketsPayload, p.LambdaP}, {"loop", stats.PacketsLoop, p.LambdaL}, {"drop", stats.PacketsDrop, p.LambdaD}} {
			q := k.rate / lambda
			if sd := math.Sqrt(total * q * (1 - q)); math.Abs(float64(k.got)-q*total) > 4*sd {
				t.Errorf("%s: %d %s slots of %.0f, want %.0f ± %.0f", tt.name, k.got, k.what, total, q*total, 4*sd)
			}
		}
		real := stats.PacketsPayload - stats.PayloadDecoys
		if tt.messages == 0 && real != 0 {
			t.Errorf("idle client sent %d real fragments", real)
		}
		if tt.messages > 0 && stats.PayloadDecoys > stats.PacketsPayload/10 {
			t.Errorf("busy client filled %d of %d payload slots with decoys", stats.PayloadDecoys, stats.PacketsPayload)
		}
		t.Logf("%s: %d packets of %d bytes, KS %.4f (critical %.4f), payload %d (%d real), loop %d, drop %d",
			tt.name, n, size, d, crit, stats.PacketsPayload, real, stats.PacketsLoop, stats.PacketsDrop)
	}
	// The schedule is drawn from its own generator: what the user does
	// cannot move a single send.
	if !slices.EqualFunc(schedules[0], schedules[1], time.Time.Equal) {
		t.Error("the send schedule depends on whether the user sends")
	}
}
