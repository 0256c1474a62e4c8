package messagingtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sottonet/sotto/interfaces"
)

// The suite's cases of cancellation and concurrency (restart is restart).

// cancelled: a call whose context is already cancelled fails with the
// context's error or completes; a Decrypt that failed so can be retried
// (a failed Decrypt changes no state), and the session still works.
func cancelled(t *testing.T, u Users) {
	alice, bob := u.Open(t, "alice"), u.Open(t, "bob")
	sa := start(t, alice, bob)
	c, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := alice.Encrypt(c, &interfaces.EncryptRequest{Session: sa, Body: []byte("never mind")})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Encrypt with a cancelled context: err = %v, want nil or context.Canceled", err)
	}
	ct := enc(t, alice, sa, "retried")
	r, err := bob.Decrypt(c, &interfaces.DecryptRequest{Ciphertext: ct})
	switch {
	case err == nil:
		if string(r.Body) != "retried" {
			t.Errorf("Decrypt with a cancelled context gave %q", r.Body)
		}
	case errors.Is(err, context.Canceled):
		dec(t, bob, ct, "retried") // the message is not lost
	default:
		t.Errorf("Decrypt with a cancelled context: err = %v, want nil or context.Canceled", err)
	}
	dec(t, bob, enc(t, alice, sa, "still fine"), "still fine")
}

// concurrentEncrypts: one session encrypting from many goroutines at once
// gives messages that all decrypt, each once, to their own bodies.
func concurrentEncrypts(t *testing.T, u Users) {
	alice, bob := u.Open(t, "alice"), u.Open(t, "bob")
	sa := start(t, alice, bob)
	dec(t, bob, enc(t, alice, sa, "hello"), "hello")
	const n = 8
	cts := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := alice.Encrypt(ctx(t), &interfaces.EncryptRequest{Session: sa, Body: []byte(fmt.Sprint("concurrent ", i))})
			if err != nil {
				t.Errorf("Encrypt: %v", err)
				return
			}
			cts[i] = r.Ciphertext
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, ct := range cts {
		dec(t, bob, ct, fmt.Sprint("concurrent ", i))
	}
}
