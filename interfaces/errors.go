package interfaces

import "errors"

// Sentinel errors shared by every plugin kind. They survive the gRPC
// boundary: a plugin returning an error that wraps one of them makes the
// host's call return an error for which errors.Is reports the same sentinel.
var (
	// ErrInvalidArgument: the request is malformed (bad size, empty
	// namespace, zero lifetime...). Retrying the same request cannot help.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: the named object does not exist (or has expired).
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: the plugin cannot serve now (crashed, restarting,
	// closed). The same request may succeed later.
	ErrUnavailable = errors.New("plugin unavailable")
)
