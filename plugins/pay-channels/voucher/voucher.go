// Package voucher holds what both halves of pay-channels share: the byte
// formats of the published parameters, the channel a ledger records, the
// requests a client sends through Issue (open, close, settle) and the
// voucher it pays with, and their Ed25519 signatures.
//
// It imports neither the host nor the plugin contract, so the wallet (in
// the client, also in the browser) and the node half use one definition.
// Every parser refuses bad input with an error wrapping ErrMalformed and
// never panics. docs/SPEC.md, "Accounting: payment channels", specifies
// the formats; the voucher follows the shape of Filecoin's payment-channel
// vouchers (a channel, a nonce, a cumulative amount, the payer's
// signature).
package voucher

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Scheme is the name Info publishes.
const Scheme = "channels-ed25519-v1"

// Version is the first byte of every format.
const Version = 1

// Lengths of the formats.
const (
	KeyLen     = ed25519.PublicKeySize
	SigLen     = ed25519.SignatureSize
	IDLen      = 32
	ParamsLen  = 1 + 2*KeyLen + 8 + 4 + 8 + 4 + 4
	VoucherLen = 1 + IDLen + 8 + 8 + SigLen
	OpenLen    = 2 + 2*KeyLen + 8 + 8 + 8 + SigLen
	// CloseLen is a close without a voucher; one with a voucher is
	// VoucherLen longer.
	CloseLen  = 2 + IDLen + SigLen
	SettleLen = 2 + IDLen
)

// Kinds of Issue request (the byte after the version).
const (
	KindOpen   = 1
	KindClose  = 2
	KindSettle = 3
)

// Domain separation of the signed messages.
const (
	idDomain      = "sotto channel id v1\x00"
	voucherDomain = "sotto channel voucher v1\x00"
	openDomain    = "sotto channel open v1\x00"
	closeDomain   = "sotto channel close v1\x00"
)

// ErrMalformed: bytes that are not the format.
var ErrMalformed = errors.New("pay-channels: malformed")

// ErrBadSignature: a signature that does not verify.
var ErrBadSignature = errors.New("pay-channels: bad signature")

func malformed(what string, n int) error {
	return fmt.Errorf("%w: %s of %d bytes", ErrMalformed, what, n)
}

// Params are what a provider publishes in its descriptor.
type Params struct {
	Payee      [KeyLen]byte // the provider's key on the ledger
	Ledger     [KeyLen]byte // the key the ledger signs its entries with
	Price      uint64       // micro-units per packet
	Packets    uint32       // packets one voucher should buy
	MaxDeposit uint64       // the largest deposit a channel may hold
	Dispute    uint32       // epochs between a close and its settlement
	MaxEpochs  uint32       // the longest a channel may stay open
}

// Marshal encodes p.
func (p *Params) Marshal() []byte {
	b := make([]byte, 0, ParamsLen)
	b = append(b, Version)
	b = append(b, p.Payee[:]...)
	b = append(b, p.Ledger[:]...)
	b = binary.BigEndian.AppendUint64(b, p.Price)
	b = binary.BigEndian.AppendUint32(b, p.Packets)
	b = binary.BigEndian.AppendUint64(b, p.MaxDeposit)
	b = binary.BigEndian.AppendUint32(b, p.Dispute)
	b = binary.BigEndian.AppendUint32(b, p.MaxEpochs)
	return b
}

// ParseParams decodes published parameters.
func ParseParams(b []byte) (*Params, error) {
	if len(b) != ParamsLen || b[0] != Version {
		return nil, malformed("params", len(b))
	}
	p := &Params{}
	copy(p.Payee[:], b[1:])
	copy(p.Ledger[:], b[1+KeyLen:])
	o := 1 + 2*KeyLen
	p.Price = binary.BigEndian.Uint64(b[o:])
	p.Packets = binary.BigEndian.Uint32(b[o+8:])
	p.MaxDeposit = binary.BigEndian.Uint64(b[o+12:])
	p.Dispute = binary.BigEndian.Uint32(b[o+20:])
	p.MaxEpochs = binary.BigEndian.Uint32(b[o+24:])
	if p.Price == 0 || p.Packets == 0 {
		return nil, fmt.Errorf("%w: params with a zero price or batch", ErrMalformed)
	}
	return p, nil
}

// ChannelID names the channel of payer to payee opened with seq.
func ChannelID(payer, payee [KeyLen]byte, seq uint64) [IDLen]byte {
	h := sha256.New()
	h.Write([]byte(idDomain))
	h.Write(payer[:])
	h.Write(payee[:])
	h.Write(binary.BigEndian.AppendUint64(nil, seq))
	var id [IDLen]byte
	h.Sum(id[:0])
	return id
}

// Voucher is the payer's signed promise: the channel's payee may claim
// Amount (cumulative, in micro-units) of its deposit. A voucher with a
// higher Nonce supersedes every one before it.
type Voucher struct {
	Channel   [IDLen]byte
	Nonce     uint64
	Amount    uint64
	Signature [SigLen]byte
}

func (v *Voucher) signed() []byte {
	b := append([]byte(voucherDomain), v.Channel[:]...)
	b = binary.BigEndian.AppendUint64(b, v.Nonce)
	return binary.BigEndian.AppendUint64(b, v.Amount)
}

// Sign signs v with the payer's key.
func (v *Voucher) Sign(payer ed25519.PrivateKey) {
	copy(v.Signature[:], ed25519.Sign(payer, v.signed()))
}

// Verify checks v's signature under the payer's key.
func (v *Voucher) Verify(payer [KeyLen]byte) error {
	if !ed25519.Verify(payer[:], v.signed(), v.Signature[:]) {
		return fmt.Errorf("%w: voucher", ErrBadSignature)
	}
	return nil
}

// Marshal encodes v.
func (v *Voucher) Marshal() []byte {
	b := make([]byte, 0, VoucherLen)
	b = append(b, Version)
	b = append(b, v.Signed()...)
	return append(b, v.Signature[:]...)
}

// Signed is the voucher's fields without version and signature.
func (v *Voucher) Signed() []byte {
	b := append([]byte(nil), v.Channel[:]...)
	b = binary.BigEndian.AppendUint64(b, v.Nonce)
	return binary.BigEndian.AppendUint64(b, v.Amount)
}

// ParseVoucher decodes a voucher (it does not verify it).
func ParseVoucher(b []byte) (*Voucher, error) {
	if len(b) != VoucherLen || b[0] != Version {
		return nil, malformed("voucher", len(b))
	}
	v := &Voucher{}
	copy(v.Channel[:], b[1:])
	v.Nonce = binary.BigEndian.Uint64(b[1+IDLen:])
	v.Amount = binary.BigEndian.Uint64(b[9+IDLen:])
	copy(v.Signature[:], b[17+IDLen:])
	return v, nil
}

// Open asks the ledger to open a channel from Payer to Payee holding
// Deposit until epoch Expiry, signed by the payer.
type Open struct {
	Payer, Payee [KeyLen]byte
	Seq          uint64
	Deposit      uint64
	Expiry       uint64
	Signature    [SigLen]byte
}

// ID is the channel the open creates.
func (o *Open) ID() [IDLen]byte { return ChannelID(o.Payer, o.Payee, o.Seq) }

func (o *Open) body() []byte {
	b := []byte{Version, KindOpen}
	b = append(b, o.Payer[:]...)
	b = append(b, o.Payee[:]...)
	b = binary.BigEndian.AppendUint64(b, o.Seq)
	b = binary.BigEndian.AppendUint64(b, o.Deposit)
	return binary.BigEndian.AppendUint64(b, o.Expiry)
}

// Sign signs o with the payer's key, which must match o.Payer.
func (o *Open) Sign(payer ed25519.PrivateKey) {
	copy(o.Signature[:], ed25519.Sign(payer, append([]byte(openDomain), o.body()...)))
}

// Verify checks o's signature under o.Payer.
func (o *Open) Verify() error {
	if !ed25519.Verify(o.Payer[:], append([]byte(openDomain), o.body()...), o.Signature[:]) {
		return fmt.Errorf("%w: open", ErrBadSignature)
	}
	return nil
}

// Marshal encodes o.
func (o *Open) Marshal() []byte { return append(o.body(), o.Signature[:]...) }

// Close asks the ledger to close a channel, signed by its payer, with the
// latest voucher the payer signed (if any): the ledger settles on the
// newest voucher either side presents before the dispute window ends.
type Close struct {
	Channel   [IDLen]byte
	Voucher   *Voucher // may be nil
	Signature [SigLen]byte
}

func (c *Close) body() []byte {
	b := []byte{Version, KindClose}
	b = append(b, c.Channel[:]...)
	if c.Voucher != nil {
		b = append(b, c.Voucher.Marshal()...)
	}
	return b
}

// Sign signs c with the payer's key.
func (c *Close) Sign(payer ed25519.PrivateKey) {
	copy(c.Signature[:], ed25519.Sign(payer, append([]byte(closeDomain), c.body()...)))
}

// Verify checks c's signature under the channel's payer.
func (c *Close) Verify(payer [KeyLen]byte) error {
	if !ed25519.Verify(payer[:], append([]byte(closeDomain), c.body()...), c.Signature[:]) {
		return fmt.Errorf("%w: close", ErrBadSignature)
	}
	return nil
}

// Marshal encodes c.
func (c *Close) Marshal() []byte { return append(c.body(), c.Signature[:]...) }

// Settle asks the ledger to pay out a channel whose dispute window is
// over; anyone may ask.
type Settle struct{ Channel [IDLen]byte }

// Marshal encodes s.
func (s *Settle) Marshal() []byte { return append([]byte{Version, KindSettle}, s.Channel[:]...) }

// Request is one parsed Issue request: exactly one field is set.
type Request struct {
	Open   *Open
	Close  *Close
	Settle *Settle
}

// ParseRequest decodes an Issue request (it verifies no signature).
func ParseRequest(b []byte) (*Request, error) {
	if len(b) < 2 || b[0] != Version {
		return nil, malformed("issue request", len(b))
	}
	switch b[1] {
	case KindOpen:
		if len(b) != OpenLen {
			return nil, malformed("open", len(b))
		}
		o := &Open{}
		copy(o.Payer[:], b[2:])
		copy(o.Payee[:], b[2+KeyLen:])
		r := b[2+2*KeyLen:]
		o.Seq = binary.BigEndian.Uint64(r)
		o.Deposit = binary.BigEndian.Uint64(r[8:])
		o.Expiry = binary.BigEndian.Uint64(r[16:])
		copy(o.Signature[:], r[24:])
		return &Request{Open: o}, nil
	case KindClose:
		if len(b) != CloseLen && len(b) != CloseLen+VoucherLen {
			return nil, malformed("close", len(b))
		}
		c := &Close{}
		copy(c.Channel[:], b[2:])
		if len(b) == CloseLen+VoucherLen {
			v, err := ParseVoucher(b[2+IDLen : 2+IDLen+VoucherLen])
			if err != nil {
				return nil, err
			}
			c.Voucher = v
		}
		copy(c.Signature[:], b[len(b)-SigLen:])
		return &Request{Close: c}, nil
	case KindSettle:
		if len(b) != SettleLen {
			return nil, malformed("settle", len(b))
		}
		s := &Settle{}
		copy(s.Channel[:], b[2:])
		return &Request{Settle: s}, nil
	}
	return nil, fmt.Errorf("%w: issue request of kind %d", ErrMalformed, b[1])
}

// State is a channel as the ledger holds it, and what the ledger signs in
// its replies.
type State struct {
	ID           [IDLen]byte
	Payer, Payee [KeyLen]byte
	Deposit      uint64
	Opened       uint64 // epoch
	Expiry       uint64 // epoch; vouchers are refused from then on
	// Nonce and Amount are the newest voucher presented to the ledger
	// (zero: none).
	Nonce, Amount uint64
	// Closing is the epoch the payer closed the channel in (0: open;
	// epochs start at 1).
	Closing uint64
	// Settled: paid out (Amount to the payee, the rest back to the payer).
	Settled bool
	// Seq is the ledger entry that last changed the channel.
	Seq uint64
}

// StateLen is a marshalled State.
const StateLen = 1 + IDLen + 2*KeyLen + 8*7 + 1

// SettlesAt is the first epoch the channel can be paid out in: dispute
// epochs after its close, or after its expiry if it was never closed.
func (s *State) SettlesAt(dispute uint64) uint64 {
	end := s.Expiry
	if s.Closing != 0 && s.Closing < end {
		end = s.Closing
	}
	return end + dispute
}

// Refund is what goes back to the payer at settlement.
func (s *State) Refund() uint64 { return s.Deposit - s.Amount }

// Marshal encodes s.
func (s *State) Marshal() []byte {
	b := make([]byte, 0, StateLen)
	b = append(b, Version)
	b = append(b, s.ID[:]...)
	b = append(b, s.Payer[:]...)
	b = append(b, s.Payee[:]...)
	for _, v := range []uint64{s.Deposit, s.Opened, s.Expiry, s.Nonce, s.Amount, s.Closing, s.Seq} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	if s.Settled {
		return append(b, 1)
	}
	return append(b, 0)
}

// ParseState decodes a channel state.
func ParseState(b []byte) (*State, error) {
	if len(b) != StateLen || b[0] != Version || b[StateLen-1] > 1 {
		return nil, malformed("channel state", len(b))
	}
	s := &State{}
	copy(s.ID[:], b[1:])
	copy(s.Payer[:], b[1+IDLen:])
	copy(s.Payee[:], b[1+IDLen+KeyLen:])
	o := 1 + IDLen + 2*KeyLen
	for _, p := range []*uint64{&s.Deposit, &s.Opened, &s.Expiry, &s.Nonce, &s.Amount, &s.Closing, &s.Seq} {
		*p = binary.BigEndian.Uint64(b[o:])
		o += 8
	}
	s.Settled = b[o] == 1
	if s.Amount > s.Deposit {
		return nil, fmt.Errorf("%w: channel state claims more than its deposit", ErrMalformed)
	}
	return s, nil
}

// Receipt is the ledger's signed reply to an Issue: the channel's state
// after the request, signed by the ledger key the provider publishes.
type Receipt struct {
	State     State
	Signature [SigLen]byte
}

const receiptDomain = "sotto channel receipt v1\x00"

// SignReceipt signs s with the ledger's key.
func SignReceipt(s *State, ledger ed25519.PrivateKey) []byte {
	m := s.Marshal()
	return append(m, ed25519.Sign(ledger, append([]byte(receiptDomain), m...))...)
}

// ParseReceipt decodes a receipt and checks the ledger's signature.
func ParseReceipt(b []byte, ledger [KeyLen]byte) (*State, error) {
	if len(b) != StateLen+SigLen {
		return nil, malformed("receipt", len(b))
	}
	s, err := ParseState(b[:StateLen])
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(ledger[:], append([]byte(receiptDomain), b[:StateLen]...), b[StateLen:]) {
		return nil, fmt.Errorf("%w: receipt", ErrBadSignature)
	}
	return s, nil
}
