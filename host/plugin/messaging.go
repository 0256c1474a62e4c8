package plugin

import (
	"context"

	"github.com/sottonet/sotto/interfaces"
)

// Messaging returns the plugin as an interfaces.Messaging whose calls go
// to whichever process currently serves the slot (see Storage).
func (p *Plugin) Messaging() interfaces.Messaging { return messaging{p} }

type messaging struct{ p *Plugin }

type ms = interfaces.Messaging

func (m messaging) ContactCard(ctx context.Context, req *interfaces.ContactCardRequest) (*interfaces.ContactCardResponse, error) {
	return call(ctx, m.p, "ContactCard", func(ctx context.Context, c ms) (*interfaces.ContactCardResponse, error) {
		return c.ContactCard(ctx, req)
	})
}

func (m messaging) StartSession(ctx context.Context, req *interfaces.StartSessionRequest) (*interfaces.StartSessionResponse, error) {
	return call(ctx, m.p, "StartSession", func(ctx context.Context, c ms) (*interfaces.StartSessionResponse, error) {
		return c.StartSession(ctx, req)
	})
}

func (m messaging) Encrypt(ctx context.Context, req *interfaces.EncryptRequest) (*interfaces.EncryptResponse, error) {
	return call(ctx, m.p, "Encrypt", func(ctx context.Context, c ms) (*interfaces.EncryptResponse, error) { return c.Encrypt(ctx, req) })
}

func (m messaging) Decrypt(ctx context.Context, req *interfaces.DecryptRequest) (*interfaces.DecryptResponse, error) {
	return call(ctx, m.p, "Decrypt", func(ctx context.Context, c ms) (*interfaces.DecryptResponse, error) { return c.Decrypt(ctx, req) })
}

func (m messaging) EndSession(ctx context.Context, req *interfaces.EndSessionRequest) (*interfaces.EndSessionResponse, error) {
	return call(ctx, m.p, "EndSession", func(ctx context.Context, c ms) (*interfaces.EndSessionResponse, error) { return c.EndSession(ctx, req) })
}
