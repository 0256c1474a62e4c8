package demo

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/sottonet/sotto/interfaces/wallet"
)

// meteredWallet measures what paying costs a client, in the run itself:
// the bytes its payment operations put on the client protocol (Issue
// requests and replies, Redeem credentials and receipts: the same bytes
// the gateway handles) and the CPU time of the goroutine running Pay,
// locked to its thread for the call and measured as that thread's CPU
// (threadCPU; zero where the OS does not say), so network waits, which
// sleep, do not count.
type meteredWallet struct {
	wallet.Wallet
	mu    sync.Mutex
	meter payMeter
}

// payMeter is what the clients' wallets measured.
type payMeter struct {
	Pays        uint64
	BytesSent   uint64 // client → gateway
	BytesRecv   uint64 // gateway → client
	CPU         time.Duration
	CPUMeasured bool
}

func (m *payMeter) add(o payMeter) {
	m.Pays += o.Pays
	m.BytesSent += o.BytesSent
	m.BytesRecv += o.BytesRecv
	m.CPU += o.CPU
	m.CPUMeasured = m.CPUMeasured || o.CPUMeasured
}

func (w *meteredWallet) Pay(ctx context.Context, link wallet.Link, p wallet.Provider) (uint64, error) {
	cl := &countingLink{Link: link}
	runtime.LockOSThread()
	start, ok := threadCPU()
	granted, err := w.Wallet.Pay(ctx, cl, p)
	end, ok2 := threadCPU()
	runtime.UnlockOSThread()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.meter.Pays++
	w.meter.BytesSent += cl.sent
	w.meter.BytesRecv += cl.recv
	if ok && ok2 {
		w.meter.CPU += end - start
		w.meter.CPUMeasured = true
	}
	return granted, err
}

func (w *meteredWallet) measured() payMeter {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.meter
}

// countingLink counts the design's bytes that cross the client protocol.
// It is used by one Pay call at a time.
type countingLink struct {
	wallet.Link
	sent, recv uint64
}

func (l *countingLink) Issue(ctx context.Context, epoch uint64, request []byte) ([]byte, error) {
	l.sent += uint64(len(request))
	resp, err := l.Link.Issue(ctx, epoch, request)
	l.recv += uint64(len(resp))
	return resp, err
}

func (l *countingLink) Redeem(ctx context.Context, epoch, packets uint64, credential []byte) (uint64, []byte, error) {
	l.sent += uint64(len(credential))
	granted, receipt, err := l.Link.Redeem(ctx, epoch, packets, credential)
	l.recv += uint64(len(receipt))
	return granted, receipt, err
}
