package interfaces

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sottonet/sotto/core/pkidoc"
	pluginv1 "github.com/sottonet/sotto/interfaces/internal/proto/plugin/v1"
)

// Sentinel errors shared by every plugin kind. They survive the gRPC
// boundary: a plugin returning an error that wraps one of them makes the
// host's call return an error for which errors.Is reports the same sentinel.
var (
	// ErrInvalidArgument: the request is malformed (bad size, empty
	// namespace, zero lifetime...). Retrying the same request cannot help.
	ErrInvalidArgument = pkidoc.ErrInvalidArgument
	// ErrNotFound: the named object does not exist (or has expired).
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: the plugin cannot serve now (crashed, restarting,
	// closed). The same request may succeed later.
	ErrUnavailable = errors.New("plugin unavailable")
)

// A sentinel known to the gRPC boundary: its stable wire name and the gRPC
// status code a plugin's error wrapping it travels as.
type wireSentinel struct {
	name string
	err  error
	code codes.Code
}

var (
	sentinelsMu sync.RWMutex
	sentinels   []wireSentinel
)

func init() {
	registerError("invalid_argument", ErrInvalidArgument, codes.InvalidArgument)
	registerError("not_found", ErrNotFound, codes.NotFound)
	registerError("unavailable", ErrUnavailable, codes.Unavailable)
}

// registerError makes a sentinel error survive the gRPC boundary: a plugin
// error wrapping err travels with code and the sentinel's name, and the
// host's error then satisfies errors.Is(hostErr, err). A kind registers its
// own sentinels (ErrEquivocation, ErrDoubleSpend...) from an init function.
// Names are part of the wire contract: never rename one.
func registerError(name string, err error, code codes.Code) {
	sentinelsMu.Lock()
	defer sentinelsMu.Unlock()
	for _, s := range sentinels {
		if s.name == name {
			panic("interfaces: error registered twice: " + name)
		}
	}
	sentinels = append(sentinels, wireSentinel{name, err, code})
}

// toStatus turns an implementation's error into a gRPC status error that
// names every registered sentinel it wraps. Its code is that of the most
// recently registered (most specific) match, else Unknown.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		if _, isRemote := err.(*RemoteError); !isRemote {
			return err
		}
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	var names []string
	sentinelsMu.RLock()
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			names = append(names, s.name)
			code = s.code
		}
	}
	sentinelsMu.RUnlock()
	st := status.New(code, err.Error())
	if len(names) > 0 {
		if withInfo, derr := st.WithDetails(&pluginv1.ErrorInfo{Sentinels: names}); derr == nil {
			st = withInfo
		}
	}
	return st.Err()
}

// RemoteError is an error a plugin returned, as the host sees it: the
// plugin's message, and every sentinel it wrapped (errors.Is works).
type RemoteError struct {
	Code    codes.Code
	Message string
	// Answered is true when the plugin returned the error itself (it
	// named the sentinels it wraps): the plugin is alive, even when the
	// error wraps ErrUnavailable ("retry later": a full disk, say). False
	// for what the transport made of a failure (the process died, the
	// connection broke).
	Answered  bool
	sentinels []error
}

// PluginAnswered reports whether err holds an error a plugin returned
// itself (RemoteError.Answered), as opposed to a failure to reach it.
func PluginAnswered(err error) bool {
	var re *RemoteError
	return errors.As(err, &re) && re.Answered
}

func (e *RemoteError) Error() string   { return e.Message }
func (e *RemoteError) Unwrap() []error { return e.sentinels }

// GRPCStatus lets a RemoteError cross another gRPC hop unchanged.
func (e *RemoteError) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

// fromStatus turns a gRPC error back into an error the host can branch on.
// Transport failures (the plugin died, the connection broke) wrap
// ErrUnavailable; deadlines and cancellations wrap the context's errors
// and nothing else: a caller that hung up or gave up is not a plugin that
// failed (a client cancelling its requests must not get a provider's
// storage plugin restarted).
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	re := &RemoteError{Code: st.Code(), Message: st.Message()}
	for _, d := range st.Details() {
		info, ok := d.(*pluginv1.ErrorInfo)
		if !ok {
			continue
		}
		re.Answered = true
		sentinelsMu.RLock()
		for _, name := range info.GetSentinels() {
			for _, s := range sentinels {
				if s.name == name {
					re.sentinels = append(re.sentinels, s.err)
				}
			}
		}
		sentinelsMu.RUnlock()
	}
	if len(re.sentinels) == 0 {
		switch st.Code() {
		case codes.InvalidArgument:
			re.sentinels = []error{ErrInvalidArgument}
		case codes.NotFound:
			re.sentinels = []error{ErrNotFound}
		case codes.Unavailable:
			re.sentinels = []error{ErrUnavailable}
		case codes.DeadlineExceeded:
			re.sentinels = []error{context.DeadlineExceeded}
		}
		if st.Code() == codes.Canceled {
			re.sentinels = append(re.sentinels, context.Canceled)
		}
		if st.Code() == codes.Unavailable {
			re.Message = "plugin unavailable: " + re.Message
		}
	}
	return re
}

// ErrMalformedReply: a plugin answered with a reply that does not fit the
// request (wrong number of results, bad sizes). The plugin is buggy or
// speaks another protocol; it wraps ErrUnavailable, since retrying against
// a restarted plugin is the only remedy.
var ErrMalformedReply = fmt.Errorf("malformed reply from plugin: %w", ErrUnavailable)
