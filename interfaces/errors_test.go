package interfaces

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var errTestSpecific = fmt.Errorf("test specific: %w", ErrInvalidArgument)

func init() { registerError("test_specific", errTestSpecific, codes.FailedPrecondition) }

func TestSentinelsSurviveTheWire(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		want     []error
		wantCode codes.Code
	}{
		{"invalid argument keeps its sentinel", fmt.Errorf("bad size: %w", ErrInvalidArgument), []error{ErrInvalidArgument}, codes.InvalidArgument},
		{"not found keeps its sentinel", fmt.Errorf("gone: %w", ErrNotFound), []error{ErrNotFound}, codes.NotFound},
		{"a kind's own sentinel keeps itself and what it wraps", fmt.Errorf("x: %w", errTestSpecific), []error{errTestSpecific, ErrInvalidArgument}, codes.FailedPrecondition},
		{"a deadline stays a deadline", fmt.Errorf("slow: %w", context.DeadlineExceeded), []error{context.DeadlineExceeded}, codes.DeadlineExceeded},
		{"an unknown error carries only its message", errors.New("boom"), nil, codes.Unknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire := toStatus(tc.err)
			if got := status.Code(wire); got != tc.wantCode {
				t.Errorf("code = %v, want %v", got, tc.wantCode)
			}
			back := fromStatus(wire)
			if back.Error() != tc.err.Error() {
				t.Errorf("message = %q, want %q", back.Error(), tc.err.Error())
			}
			for _, s := range tc.want {
				if !errors.Is(back, s) {
					t.Errorf("errors.Is(%v, %v) = false", back, s)
				}
			}
			if errors.Is(back, ErrUnavailable) {
				t.Errorf("%v wrongly reads as ErrUnavailable", back)
			}
		})
	}
}

func TestTransportFailuresAreUnavailable(t *testing.T) {
	for _, err := range []error{
		status.Error(codes.Unavailable, "connection refused"),
		errors.New("not a status at all"),
	} {
		if got := fromStatus(err); !errors.Is(got, ErrUnavailable) {
			t.Errorf("fromStatus(%v) = %v, want ErrUnavailable", err, got)
		} else if PluginAnswered(got) {
			t.Errorf("fromStatus(%v): a transport failure reads as the plugin's own answer", err)
		}
	}
}

// A plugin that answers "unavailable" itself (storage-badger on a full
// disk) is alive: the host tells its answer from a transport failure, and
// does not restart it (host/plugin's call).
func TestAPluginsOwnUnavailableIsAnAnswer(t *testing.T) {
	back := fromStatus(toStatus(fmt.Errorf("disk nearly full: %w", ErrUnavailable)))
	if !errors.Is(back, ErrUnavailable) || !PluginAnswered(back) {
		t.Fatalf("got %v (answered %v), want ErrUnavailable answered by the plugin", back, PluginAnswered(back))
	}
	if PluginAnswered(fmt.Errorf("wrapped: %w", ErrUnavailable)) {
		t.Fatal("a local error reads as a plugin's answer")
	}
}
