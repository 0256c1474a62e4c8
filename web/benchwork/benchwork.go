// Package benchwork times the client's heavy operations the same way in
// the browser (the Wasm client calls it: web/wasm, "bench") and natively
// (web's browser test, SOTTOWEB_BENCH=1), so the two can be set side by
// side from one run: one X25519 scalar multiplication as the unit, a
// sender's 5-hop Sphinx packet (default geometry), and a 1 KiB message
// sealed by the Double Ratchet in a chain (plugins/msg-ratchet, state in
// memory).
package benchwork

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
	msgratchet "github.com/sottonet/sotto/plugins/msg-ratchet"
)

// Result is one operation's median time per call.
type Result struct {
	Name    string  `json:"name"`
	NsPerOp float64 `json:"nsPerOp"`
}

// Run times each operation in rounds of about round each (after one
// warm-up round) and returns the median round's time per call.
func Run(round time.Duration, rounds int) ([]Result, error) {
	ops, err := operations()
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, op := range ops {
		if err := op.f(); err != nil { // warm up, and fail early
			return nil, fmt.Errorf("benchwork: %s: %w", op.name, err)
		}
		per := make([]float64, 0, rounds)
		for range rounds {
			n, start := 0, time.Now()
			for time.Since(start) < round {
				if err := op.f(); err != nil {
					return nil, fmt.Errorf("benchwork: %s: %w", op.name, err)
				}
				n++
			}
			per = append(per, float64(time.Since(start).Nanoseconds())/float64(n))
		}
		slices.Sort(per)
		out = append(out, Result{Name: op.name, NsPerOp: per[len(per)/2]})
	}
	return out, nil
}

type op struct {
	name string
	f    func() error
}

func operations() ([]op, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	peer, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}

	g := sphinx.DefaultGeometry()
	path := make([]sphinx.PathHop, 5)
	for i := range path {
		nk, err := sphinx.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		path[i] = sphinx.PathHop{PublicKey: nk.PublicKey()}
		path[i].ID[0] = byte(i + 1)
		if i < len(path)-1 {
			path[i].Commands = []sphinx.Command{&sphinx.NodeDelay{Delay: 100}}
		} else {
			path[i].Commands = []sphinx.Command{&sphinx.Recipient{}}
		}
	}
	payload := make([]byte, g.ForwardPayloadLength)

	ctx := context.Background()
	alice, err := msgratchet.Open(ctx, memkv.New(), "ratchet")
	if err != nil {
		return nil, err
	}
	bob, err := msgratchet.Open(ctx, memkv.New(), "ratchet")
	if err != nil {
		return nil, err
	}
	card, err := bob.ContactCard(ctx, nil)
	if err != nil {
		return nil, err
	}
	st, err := alice.StartSession(ctx, &interfaces.StartSessionRequest{PeerCard: card.Card})
	if err != nil {
		return nil, err
	}
	body := make([]byte, 1024)

	return []op{
		{"X25519", func() error { _, err := k.ECDH(peer.PublicKey()); return err }},
		{"Sphinx packet, 5 hops", func() error { _, err := sphinx.NewPacket(rand.Reader, g, path, payload); return err }},
		{"ratchet encrypt 1 KiB, in chain", func() error {
			_, err := alice.Encrypt(ctx, &interfaces.EncryptRequest{Session: st.Session, Body: body})
			return err
		}},
	}, nil
}
