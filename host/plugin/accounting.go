package plugin

import (
	"context"

	"github.com/sottonet/sotto/interfaces"
)

// Accounting returns the plugin as an interfaces.Accounting whose calls go
// to whichever process currently serves the slot (see Storage).
func (p *Plugin) Accounting() interfaces.Accounting { return accounting{p} }

type accounting struct{ p *Plugin }

type ac = interfaces.Accounting

func (a accounting) Info(ctx context.Context, req *interfaces.AccountingInfoRequest) (*interfaces.AccountingInfoResponse, error) {
	return call(ctx, a.p, "Info", func(ctx context.Context, c ac) (*interfaces.AccountingInfoResponse, error) { return c.Info(ctx, req) })
}

func (a accounting) Issue(ctx context.Context, req *interfaces.IssueRequest) (*interfaces.IssueResponse, error) {
	return call(ctx, a.p, "Issue", func(ctx context.Context, c ac) (*interfaces.IssueResponse, error) { return c.Issue(ctx, req) })
}

func (a accounting) Redeem(ctx context.Context, req *interfaces.RedeemRequest) (*interfaces.RedeemResponse, error) {
	return call(ctx, a.p, "Redeem", func(ctx context.Context, c ac) (*interfaces.RedeemResponse, error) { return c.Redeem(ctx, req) })
}

func (a accounting) RecordWork(ctx context.Context, req *interfaces.RecordWorkRequest) (*interfaces.RecordWorkResponse, error) {
	return call(ctx, a.p, "RecordWork", func(ctx context.Context, c ac) (*interfaces.RecordWorkResponse, error) { return c.RecordWork(ctx, req) })
}

func (a accounting) Earnings(ctx context.Context, req *interfaces.EarningsRequest) (*interfaces.EarningsResponse, error) {
	return call(ctx, a.p, "Earnings", func(ctx context.Context, c ac) (*interfaces.EarningsResponse, error) { return c.Earnings(ctx, req) })
}
