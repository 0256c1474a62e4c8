package plugin

import (
	"context"

	"github.com/sottonet/sotto/interfaces"
)

// PKI returns the plugin as an interfaces.PKI whose calls go to whichever
// process currently serves the slot (see Storage).
func (p *Plugin) PKI() interfaces.PKI { return pki{p} }

type pki struct{ p *Plugin }

type pk = interfaces.PKI

func (k pki) Publish(ctx context.Context, req *interfaces.PublishRequest) (*interfaces.PublishResponse, error) {
	return call(ctx, k.p, "Publish", func(ctx context.Context, c pk) (*interfaces.PublishResponse, error) { return c.Publish(ctx, req) })
}

func (k pki) Document(ctx context.Context, req *interfaces.DocumentRequest) (*interfaces.DocumentResponse, error) {
	return call(ctx, k.p, "Document", func(ctx context.Context, c pk) (*interfaces.DocumentResponse, error) { return c.Document(ctx, req) })
}

func (k pki) Evidence(ctx context.Context, req *interfaces.EvidenceRequest) (*interfaces.EvidenceResponse, error) {
	return call(ctx, k.p, "Evidence", func(ctx context.Context, c pk) (*interfaces.EvidenceResponse, error) { return c.Evidence(ctx, req) })
}
