// Command messaging-ratchet serves the reference messaging plugin. It
// keeps its state in the key-value space its host offers every plugin
// (interfaces.Host.KV, durable in the node's Storage and private to the
// plugin's slot), so it opens no database of its own. Its config is an
// empty JSON object (or nothing); a host that offers no KV is refused.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	messagingratchet "github.com/sottonet/sotto/examples/messaging-ratchet"
	"github.com/sottonet/sotto/interfaces"
)

func main() {
	interfaces.Serve(interfaces.MessagingPlugin(factory))
}

func factory(ctx context.Context, raw []byte) (interfaces.Messaging, error) {
	if len(bytes.TrimSpace(raw)) > 0 {
		var c struct{}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("%w: messaging-ratchet config: %v", interfaces.ErrInvalidArgument, err)
		}
	}
	h, ok := interfaces.HostFrom(ctx)
	if !ok || h.KV == nil {
		return nil, fmt.Errorf("%w: messaging-ratchet keeps its state in the host KV, and this host offers none", interfaces.ErrUnavailable)
	}
	return messagingratchet.Open(ctx, h.KV, "ratchet")
}
