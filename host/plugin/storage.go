package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/sottonet/sotto/interfaces"
)

// Storage returns the plugin as an interfaces.Storage whose calls go to
// whichever process currently serves the slot. It is valid for the life of
// the Plugin; while the plugin restarts, calls fail with errors wrapping
// interfaces.ErrUnavailable. Other kinds follow this file's pattern.
func (p *Plugin) Storage() interfaces.Storage { return storage{p} }

type storage struct{ p *Plugin }

type st = interfaces.Storage

func (s storage) AppendMailbox(ctx context.Context, req *interfaces.AppendMailboxRequest) (*interfaces.AppendMailboxResponse, error) {
	return call(ctx, s.p, "AppendMailbox", func(ctx context.Context, c st) (*interfaces.AppendMailboxResponse, error) {
		return c.AppendMailbox(ctx, req)
	})
}

func (s storage) ListMailbox(ctx context.Context, req *interfaces.ListMailboxRequest) (*interfaces.ListMailboxResponse, error) {
	return call(ctx, s.p, "ListMailbox", func(ctx context.Context, c st) (*interfaces.ListMailboxResponse, error) {
		return c.ListMailbox(ctx, req)
	})
}

func (s storage) FetchMailbox(ctx context.Context, req *interfaces.FetchMailboxRequest) (*interfaces.FetchMailboxResponse, error) {
	return call(ctx, s.p, "FetchMailbox", func(ctx context.Context, c st) (*interfaces.FetchMailboxResponse, error) {
		return c.FetchMailbox(ctx, req)
	})
}

func (s storage) AckMailbox(ctx context.Context, req *interfaces.AckMailboxRequest) (*interfaces.AckMailboxResponse, error) {
	return call(ctx, s.p, "AckMailbox", func(ctx context.Context, c st) (*interfaces.AckMailboxResponse, error) { return c.AckMailbox(ctx, req) })
}

func (s storage) InsertReplayTags(ctx context.Context, req *interfaces.InsertReplayTagsRequest) (*interfaces.InsertReplayTagsResponse, error) {
	return call(ctx, s.p, "InsertReplayTags", func(ctx context.Context, c st) (*interfaces.InsertReplayTagsResponse, error) {
		return c.InsertReplayTags(ctx, req)
	})
}

func (s storage) DropReplayEpoch(ctx context.Context, req *interfaces.DropReplayEpochRequest) (*interfaces.DropReplayEpochResponse, error) {
	return call(ctx, s.p, "DropReplayEpoch", func(ctx context.Context, c st) (*interfaces.DropReplayEpochResponse, error) {
		return c.DropReplayEpoch(ctx, req)
	})
}

func (s storage) KVPut(ctx context.Context, req *interfaces.KVPutRequest) (*interfaces.KVPutResponse, error) {
	return call(ctx, s.p, "KVPut", func(ctx context.Context, c st) (*interfaces.KVPutResponse, error) { return c.KVPut(ctx, req) })
}

func (s storage) KVGet(ctx context.Context, req *interfaces.KVGetRequest) (*interfaces.KVGetResponse, error) {
	return call(ctx, s.p, "KVGet", func(ctx context.Context, c st) (*interfaces.KVGetResponse, error) { return c.KVGet(ctx, req) })
}

func (s storage) KVDelete(ctx context.Context, req *interfaces.KVDeleteRequest) (*interfaces.KVDeleteResponse, error) {
	return call(ctx, s.p, "KVDelete", func(ctx context.Context, c st) (*interfaces.KVDeleteResponse, error) { return c.KVDelete(ctx, req) })
}

func (s storage) KVList(ctx context.Context, req *interfaces.KVListRequest) (*interfaces.KVListResponse, error) {
	return call(ctx, s.p, "KVList", func(ctx context.Context, c st) (*interfaces.KVListResponse, error) { return c.KVList(ctx, req) })
}

// KVSwap forwards compare-and-swap to the storage plugin; a plugin that
// has none answers errors.ErrUnsupported (interfaces.KVSwapper).
func (s storage) KVSwap(ctx context.Context, req *interfaces.KVSwapRequest) (*interfaces.KVSwapResponse, error) {
	return call(ctx, s.p, "KVSwap", func(ctx context.Context, c st) (*interfaces.KVSwapResponse, error) {
		sw, ok := c.(interfaces.KVSwapper)
		if !ok {
			return nil, fmt.Errorf("storage plugin: kv swap: %w", errors.ErrUnsupported)
		}
		return sw.KVSwap(ctx, req)
	})
}
