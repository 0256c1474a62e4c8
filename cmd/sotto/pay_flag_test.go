package main

import (
	"testing"

	"github.com/spf13/pflag"

	bswallet "github.com/sottonet/sotto/plugins/pay-blindsig/wallet"
	chwallet "github.com/sottonet/sotto/plugins/pay-channels/wallet"
)

// --pay names the wallet send and recv hand the client.
func TestPayFlagChoosesTheWallet(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // "blindsig", "channels", "none" or "error"
	}{
		{"blind signatures by default", nil, "blindsig"},
		{"payment channels", []string{"--pay", "channels"}, "channels"},
		{"no wallet", []string{"--pay", "none"}, "none"},
		{"vouchers are for blind signatures only", []string{"--pay", "channels", "--voucher", "00"}, "error"},
		{"an unknown design is refused", []string{"--pay", "cash"}, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f clientFlags
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			f.register(fs, "")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			w, err := f.wallet()
			got := "none"
			switch w.(type) {
			case *bswallet.Wallet:
				got = "blindsig"
			case *chwallet.Wallet:
				got = "channels"
			}
			if err != nil {
				got = "error"
			}
			if got != tc.want {
				t.Errorf("wallet %T, err %v; want %s", w, err, tc.want)
			}
		})
	}
}
