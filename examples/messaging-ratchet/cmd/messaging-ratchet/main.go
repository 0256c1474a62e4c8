// Command messaging-ratchet serves the reference messaging plugin. Its
// state lives in its own Badger store, configured as
//
//	{"storage": {"dir": "/var/lib/sotto/ratchet"}}
//
// (the storage object is storage-badger's config).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	messagingratchet "github.com/sottonet/sotto/examples/messaging-ratchet"
	"github.com/sottonet/sotto/interfaces"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
)

type config struct {
	Storage json.RawMessage `json:"storage"`
}

// withStore closes the store when the host stops the plugin.
type withStore struct {
	*messagingratchet.Ratchet
	st *storagebadger.Store
}

func (w withStore) Close() error { return w.st.Close() }

func main() {
	interfaces.Serve(interfaces.MessagingPlugin(func(ctx context.Context, raw []byte) (interfaces.Messaging, error) {
		var c config
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("%w: messaging-ratchet config: %v", interfaces.ErrInvalidArgument, err)
		}
		cfg, err := storagebadger.ParseConfig(c.Storage)
		if err != nil {
			return nil, err
		}
		st, err := storagebadger.Open(cfg)
		if err != nil {
			return nil, err
		}
		r, err := messagingratchet.Open(ctx, st, "messaging-ratchet")
		if err != nil {
			_ = st.Close()
			return nil, err
		}
		return withStore{r, st}, nil
	}))
}
