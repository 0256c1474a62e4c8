package voucher

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
)

func key(t testing.TB) (ed25519.PrivateKey, [KeyLen]byte) {
	pub, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var k [KeyLen]byte
	copy(k[:], pub)
	return sk, k
}

func TestFormatsRoundTrip(t *testing.T) {
	sk, pk := key(t)
	_, payee := key(t)
	o := Open{Payer: pk, Payee: payee, Seq: 3, Deposit: 1000, Expiry: 9}
	o.Sign(sk)
	r, err := ParseRequest(o.Marshal())
	if err != nil || *r.Open != o || r.Open.Verify() != nil {
		t.Fatalf("open: %+v, %v", r, err)
	}
	v := Voucher{Channel: o.ID(), Nonce: 2, Amount: 500}
	v.Sign(sk)
	got, err := ParseVoucher(v.Marshal())
	if err != nil || *got != v || got.Verify(pk) != nil {
		t.Fatalf("voucher: %+v, %v", got, err)
	}
	if len(v.Marshal()) != VoucherLen {
		t.Errorf("a voucher of %d bytes, want %d", len(v.Marshal()), VoucherLen)
	}
	for _, c := range []Close{{Channel: o.ID()}, {Channel: o.ID(), Voucher: &v}} {
		c.Sign(sk)
		r, err := ParseRequest(c.Marshal())
		if err != nil || r.Close == nil || r.Close.Verify(pk) != nil {
			t.Fatalf("close: %+v, %v", r, err)
		}
	}
	p := Params{Payee: payee, Ledger: pk, Price: 10, Packets: 100, MaxDeposit: 1 << 40, Dispute: 2, MaxEpochs: 64}
	if got, err := ParseParams(p.Marshal()); err != nil || *got != p {
		t.Fatalf("params: %+v, %v", got, err)
	}
	s := State{ID: o.ID(), Payer: pk, Payee: payee, Deposit: 1000, Opened: 1, Expiry: 9, Nonce: 2, Amount: 500, Closing: 4, Settled: true, Seq: 7}
	st, err := ParseReceipt(SignReceipt(&s, sk), pk)
	if err != nil || *st != s {
		t.Fatalf("receipt: %+v, %v", st, err)
	}
	if _, err := ParseReceipt(SignReceipt(&s, sk), payee); !errors.Is(err, ErrBadSignature) {
		t.Errorf("a receipt under another key: %v", err)
	}
}

func TestSignaturesBindEveryField(t *testing.T) {
	sk, pk := key(t)
	v := Voucher{Nonce: 2, Amount: 500}
	v.Sign(sk)
	for _, f := range []func(*Voucher){
		func(v *Voucher) { v.Nonce++ },
		func(v *Voucher) { v.Amount++ },
		func(v *Voucher) { v.Channel[0] ^= 1 },
	} {
		w := v
		f(&w)
		if w.Verify(pk) == nil {
			t.Error("a changed voucher verifies")
		}
	}
}

// Fuzz targets for every parser of bytes a client or provider sends.
func FuzzParseRequest(f *testing.F) {
	sk, pk := key(f)
	o := Open{Payer: pk, Payee: pk, Deposit: 1, Expiry: 2}
	o.Sign(sk)
	f.Add(o.Marshal())
	v := Voucher{Nonce: 1, Amount: 1}
	v.Sign(sk)
	c := Close{Voucher: &v}
	c.Sign(sk)
	f.Add(c.Marshal())
	f.Add((&Settle{}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("an error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		var again []byte
		switch {
		case r.Open != nil:
			again = r.Open.Marshal()
		case r.Close != nil:
			again = r.Close.Marshal()
		case r.Settle != nil:
			again = r.Settle.Marshal()
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("parsed and marshalled again: %x, want %x", again, b)
		}
	})
}

func FuzzParseVoucher(f *testing.F) {
	sk, _ := key(f)
	v := Voucher{Nonce: 1, Amount: 1}
	v.Sign(sk)
	f.Add(v.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseVoucher(b)
		if err == nil && !bytes.Equal(v.Marshal(), b) {
			t.Fatal("a voucher does not round-trip")
		}
	})
}

func FuzzParseReceiptAndParams(f *testing.F) {
	sk, pk := key(f)
	s := State{Deposit: 5, Amount: 3}
	f.Add(SignReceipt(&s, sk))
	f.Add((&Params{Price: 1, Packets: 1}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseReceipt(b, pk)
		ParseState(b)
		if p, err := ParseParams(b); err == nil && !bytes.Equal(p.Marshal(), b) {
			t.Fatal("params do not round-trip")
		}
	})
}
