package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sottonet/sotto/client"
)

// TestSendWaitsForTheContactsProvider: a contact whose provider is not in
// the document yet (a gossip PKI still converging) is tried again until it
// is or the send's time is up; any other error ends the send at once.
func TestSendWaitsForTheContactsProvider(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	unknown := fmt.Errorf("%w: the contact's provider 00 is not in the document of epoch 0", client.ErrUnknownProvider)
	other := errors.New("client: queue full")
	for _, tc := range []struct {
		name    string
		errs    []error // what the successive tries return; nil is success
		timeout time.Duration
		tries   int // 0: at least one (how many fit in the timeout depends on the machine)
		want    error
	}{
		{"known at once", []error{nil}, time.Minute, 1, nil},
		{"known after gossip", []error{unknown, unknown, nil}, time.Minute, 3, nil},
		{"another error is not retried", []error{other, nil}, time.Minute, 1, other},
		{"never known", []error{unknown, unknown, unknown, unknown}, 1500 * time.Millisecond, 0, client.ErrUnknownProvider},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), tc.timeout)
			defer cancel()
			tries := 0
			id, err := sendWhenKnown(ctx, log, func() (client.MessageID, error) {
				err := tc.errs[min(tries, len(tc.errs)-1)]
				tries++
				if err != nil {
					return client.MessageID{}, err
				}
				return client.MessageID{1}, nil
			})
			if tries != tc.tries && (tc.tries != 0 || tries == 0) {
				t.Errorf("%d tries, want %d", tries, tc.tries)
			}
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == nil && id != (client.MessageID{1}) {
				t.Fatalf("id = %v, want the successful try's", id)
			}
			if errors.Is(tc.want, client.ErrUnknownProvider) && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v: does not say the send's time ran out", err)
			}
		})
	}
}
