package plugin

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
)

// A caller that hangs up is not a plugin that failed: 100 calls whose
// callers give up mid-call (the provider's clients closing their streams
// during Fetch or Ack) leave the plugin process alone, with no crash or
// restart counted, and the next call is served by the same process.
func TestCallersHangingUpDoNotRestartThePlugin(t *testing.T) {
	p, h, err := start(t, "hang", badgerConfig(t, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pid := p.Pid()
	s := p.Storage()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(t.Context())
			go func() {
				time.Sleep(time.Duration(10+i%20) * time.Millisecond)
				cancel() // the caller hangs up while the plugin still works
			}()
			_, err := s.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: 1, Tags: []interfaces.ReplayTag{{byte(i)}}})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("a cancelled call: err = %v, want context.Canceled", err)
		}
		if errors.Is(err, interfaces.ErrUnavailable) {
			t.Fatalf("a cancelled call reads as a plugin failure: %v", err)
		}
	}
	if _, err := s.KVGet(t.Context(), &interfaces.KVGetRequest{Namespace: "n", Keys: [][]byte{[]byte("k")}}); err != nil {
		t.Fatalf("the next call: %v", err)
	}
	if got := p.Pid(); got != pid {
		t.Fatalf("plugin process %d replaced by %d after callers hung up", pid, got)
	}
	m := metricsOf(h.reg)
	if c, r := counter(t, m.crashes.WithLabelValues("store")), counter(t, m.restarts.WithLabelValues("store")); c != 0 || r != 0 {
		t.Fatalf("crashes %v, restarts %v after callers hung up; want 0 and 0", c, r)
	}
}
