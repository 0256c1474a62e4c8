package clientproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/pkidoc"
)

// sampleRequests are real requests of every op, also the fuzz seeds.
func sampleRequests() []Request {
	return []Request{
		{ID: 1, Op: OpDocument, Epoch: 42},
		{ID: 2, Op: OpSend, FirstHop: [32]byte{1, 2, 3}, Packet: bytes.Repeat([]byte{0xab}, 3130)},
		{ID: 3, Op: OpFetch, After: 7, Limit: 64},
		{ID: 4, Op: OpFetch, Mailbox: MailboxRef{SURB: true, Capability: [16]byte{9, 9}}, Limit: 0},
		{ID: 5, Op: OpAck, IDs: []uint64{1, 2, 1 << 40}},
		{ID: 6, Op: OpAck, Mailbox: MailboxRef{SURB: true, Capability: [16]byte{1}}},
		{ID: 7, Op: OpRedeem, Epoch: 3, Packets: 1000, Credential: []byte("token")},
		{ID: 1<<32 - 1, Op: OpRedeem, Epoch: 3, Packets: 1},
		{ID: 8, Op: OpIssue, Epoch: 3, Issuance: []byte("blinded tokens")},
		{ID: 9, Op: OpIssue, Epoch: 4},
	}
}

var expires = time.UnixMilli(1_760_000_000_123)

func sampleResponses() []Response {
	return []Response{
		{ID: 1, Op: OpDocument, Document: []byte("canonical document")},
		{ID: 2, Op: OpSend},
		{ID: 3, Op: OpFetch, Messages: []Message{
			{ID: 1, Expires: expires, StoredMessage: StoredMessage{Payload: []byte("forward body")}},
			{ID: 9, Expires: expires, StoredMessage: StoredMessage{Reply: true, SURBID: [16]byte{5}, Payload: []byte("reply")}},
		}},
		{ID: 4, Op: OpFetch},
		{ID: 5, Op: OpAck},
		{ID: 6, Op: OpRedeem, Granted: 500, Receipt: []byte("receipt")},
		{ID: 7, Op: OpSend, Code: CodePaymentRequired, Message: "no packets left"},
		{ID: 8, Op: OpDocument, Code: CodeNotFound},
		{ID: 9, Op: 200, Code: CodeUnsupported, Message: "op 200"},
		{ID: 10, Op: OpIssue, Issued: []byte("blind signatures")},
		{ID: 11, Op: OpIssue},
		{ID: 12, Op: OpIssue, Code: CodePaymentRequired, Message: "issuance refused"},
	}
}

// body strips a frame's length prefix, checking it.
func body(t testing.TB, frame []byte) []byte {
	t.Helper()
	if n := binary.BigEndian.Uint32(frame); int(n) != len(frame)-FrameHeaderLength {
		t.Fatalf("frame length %d, body %d bytes", n, len(frame)-FrameHeaderLength)
	}
	return frame[FrameHeaderLength:]
}

func TestRequestsRoundTrip(t *testing.T) {
	for _, want := range sampleRequests() {
		t.Run(fmt.Sprintf("%s request %d survives encoding", want.Op, want.ID), func(t *testing.T) {
			frame, err := want.AppendFrame([]byte("prefix"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(frame, []byte("prefix")) {
				t.Fatal("AppendFrame lost the prefix")
			}
			var got Request
			if err := got.Decode(body(t, frame[6:])); err != nil {
				t.Fatal(err)
			}
			if !sameRequest(&got, &want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func sameRequest(a, b *Request) bool {
	x, y := *a, *b
	for _, r := range []*Request{&x, &y} {
		if len(r.Packet) == 0 {
			r.Packet = nil
		}
		if len(r.Credential) == 0 {
			r.Credential = nil
		}
		if len(r.Issuance) == 0 {
			r.Issuance = nil
		}
		if len(r.IDs) == 0 {
			r.IDs = nil
		}
	}
	return reflect.DeepEqual(x, y)
}

func TestResponsesRoundTrip(t *testing.T) {
	for _, want := range sampleResponses() {
		t.Run(fmt.Sprintf("%s response %d (%s) survives encoding", want.Op, want.ID, want.Code), func(t *testing.T) {
			frame, err := want.AppendFrame(nil)
			if err != nil {
				t.Fatal(err)
			}
			var got Response
			if err := got.Decode(body(t, frame)); err != nil {
				t.Fatal(err)
			}
			if !sameResponse(&got, &want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func sameResponse(a, b *Response) bool {
	x, y := *a, *b
	for _, r := range []*Response{&x, &y} {
		if len(r.Document) == 0 {
			r.Document = nil
		}
		if len(r.Receipt) == 0 {
			r.Receipt = nil
		}
		if len(r.Issued) == 0 {
			r.Issued = nil
		}
		if len(r.Messages) == 0 {
			r.Messages = nil
		}
		ms := make([]Message, len(r.Messages))
		for i, m := range r.Messages {
			m.Expires = time.UnixMilli(m.Expires.UnixMilli())
			ms[i] = m
		}
		r.Messages = ms
	}
	return reflect.DeepEqual(x, y)
}

func TestErrorRepliesUnwrapToSentinels(t *testing.T) {
	tests := []struct {
		code Code
		want error
	}{
		{CodeBadRequest, ErrBadRequest},
		{CodeForbidden, ErrForbidden},
		{CodeNotFound, ErrNoDocument},
		{CodePaymentRequired, ErrPaymentRequired},
		{CodeBusy, ErrBusy},
		{CodeInternal, ErrInternal},
		{CodeUnsupported, ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.code.String()+" unwraps to its sentinel and maps back", func(t *testing.T) {
			r := Response{Op: OpSend, Code: tt.code, Message: "why"}
			err := r.Err()
			if !errors.Is(err, tt.want) {
				t.Fatalf("%v is not %v", err, tt.want)
			}
			if c := CodeOf(fmt.Errorf("wrapped: %w", tt.want)); c != tt.code {
				t.Fatalf("CodeOf(sentinel) = %s", c)
			}
			if c := CodeOf(err); c != tt.code {
				t.Fatalf("CodeOf(reply) = %s", c)
			}
		})
	}
	if CodeOf(nil) != CodeOK || CodeOf(io.EOF) != CodeInternal {
		t.Fatal("CodeOf of nil or a foreign error")
	}
	if err := (&Response{Code: 99}).Err(); err == nil || errors.Unwrap(err) != nil {
		t.Fatalf("unknown code: %v", err)
	}
}

func TestEncodingRefusesWhatExceedsTheLimits(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		resp Response
	}{
		{name: "an empty packet", req: Request{Op: OpSend}},
		{name: "an oversize packet", req: Request{Op: OpSend, Packet: make([]byte, MaxPacketLength+1)}},
		{name: "a fetch limit over the maximum", req: Request{Op: OpFetch, Limit: MaxFetchLimit + 1}},
		{name: "a negative fetch limit", req: Request{Op: OpFetch, Limit: -1}},
		{name: "too many IDs in an ack", req: Request{Op: OpAck, IDs: make([]uint64, MaxAckIDs+1)}},
		{name: "an oversize credential", req: Request{Op: OpRedeem, Credential: make([]byte, MaxCredentialLength+1)}},
		{name: "an unknown op", req: Request{Op: 77}},
		{name: "a fetch reply over the byte budget", resp: Response{Op: OpFetch, Messages: []Message{{StoredMessage: StoredMessage{Payload: make([]byte, MaxFetchBytes)}}}}},
		{name: "a fetch reply with too many messages", resp: Response{Op: OpFetch, Messages: make([]Message, MaxFetchLimit+1)}},
		{name: "an oversize receipt", resp: Response{Op: OpRedeem, Receipt: make([]byte, MaxReceiptLength+1)}},
		{name: "an oversize issuance request", req: Request{Op: OpIssue, Issuance: make([]byte, MaxIssueLength+1)}},
		{name: "an oversize issuance reply", resp: Response{Op: OpIssue, Issued: make([]byte, MaxIssueReplyLength+1)}},
	}
	for _, tt := range tests {
		t.Run("encoding refuses "+tt.name, func(t *testing.T) {
			var (
				b   []byte
				err error
			)
			if tt.req.Op != 0 {
				b, err = tt.req.AppendFrame([]byte{1})
			} else {
				b, err = tt.resp.AppendFrame([]byte{1})
			}
			if err == nil {
				t.Fatal("encoded")
			}
			if !bytes.Equal(b, []byte{1}) {
				t.Fatalf("left %d bytes behind", len(b))
			}
		})
	}
}

func TestErrorMessagesAreCutToValidUTF8(t *testing.T) {
	r := Response{Op: OpSend, Code: CodeInternal, Message: strings.Repeat("é", 200) + "\xff"}
	frame, err := r.AppendFrame(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got Response
	if err := got.Decode(body(t, frame)); err != nil {
		t.Fatal(err)
	}
	if len(got.Message) > MaxErrorMessageLength || !strings.HasPrefix(r.Message, got.Message) {
		t.Fatalf("message of %d bytes", len(got.Message))
	}
}

// requestBody is the body of r's frame.
func requestBody(t testing.TB, r Request) []byte {
	t.Helper()
	f, err := r.AppendFrame(nil)
	if err != nil {
		t.Fatal(err)
	}
	return f[FrameHeaderLength:]
}

func TestDecodingRefusesMalformedBodies(t *testing.T) {
	fetch := requestBody(t, Request{Op: OpFetch})
	ack := requestBody(t, Request{Op: OpAck, IDs: []uint64{1, 2}})
	tests := []struct {
		name string
		body []byte
	}{
		{"an empty body", nil},
		{"a body shorter than a header", []byte{1, 0, 0}},
		{"a document request without an epoch", requestBody(t, Request{Op: OpDocument})[:9]},
		{"a document request with a trailing byte", append(requestBody(t, Request{Op: OpDocument}), 0)},
		{"a send cut inside its first hop", requestBody(t, Request{Op: OpSend, Packet: []byte{1}})[:36]},
		{"a fetch cut short", fetch[:len(fetch)-1]},
		{"a fetch with a trailing byte", append(bytes.Clone(fetch), 0)},
		{"an ack whose count exceeds its IDs", ack[:len(ack)-1]},
		{"an ack whose IDs exceed its count", append(bytes.Clone(ack), make([]byte, 8)...)},
		{"an ack cut inside its mailbox", ack[:10]},
		{"a redeem without its packet count", requestBody(t, Request{Op: OpRedeem})[:12]},
		{"an issue without its epoch", requestBody(t, Request{Op: OpIssue})[:12]},
		{"an oversize body", make([]byte, MaxRequestLength+1)},
	}
	for _, tt := range tests {
		t.Run("a request decoder refuses "+tt.name+" as malformed", func(t *testing.T) {
			var r Request
			if err := r.Decode(tt.body); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}

	resp := func(r Response) []byte {
		f, err := r.AppendFrame(nil)
		if err != nil {
			t.Fatal(err)
		}
		return f[FrameHeaderLength:]
	}
	fetchReply := resp(sampleResponses()[2])
	hugeCount := bytes.Clone(fetchReply)
	binary.BigEndian.PutUint16(hugeCount[6:], MaxFetchLimit)
	longMsg := bytes.Clone(fetchReply)
	binary.BigEndian.PutUint32(longMsg[6+2+16:], 1<<31)
	badStored := bytes.Clone(fetchReply)
	badStored[6+2+20] = 9
	rtests := []struct {
		name string
		body []byte
	}{
		{"an empty body", nil},
		{"a fetch reply cut short", fetchReply[:len(fetchReply)-1]},
		{"a fetch reply with trailing bytes", append(bytes.Clone(fetchReply), 0)},
		{"a fetch reply counting more messages than it holds", hugeCount},
		{"a message longer than the reply", longMsg},
		{"a message of an unknown stored kind", badStored},
		{"a send reply with a body", append(resp(Response{Op: OpSend}), 1)},
		{"a redeem reply without a grant", resp(Response{Op: OpRedeem})[:10]},
		{"a success reply to an unknown op", []byte{99, 0, 0, 0, 1, 0}},
		{"an error message that is not UTF-8", []byte{2, 0, 0, 0, 1, 6, 0xff}},
	}
	for _, tt := range rtests {
		t.Run("a response decoder refuses "+tt.name, func(t *testing.T) {
			var r Response
			if err := r.Decode(tt.body); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

// A body of the right length is answered, never reset: Decode says with
// which code, and keeps the ID and op for the reply (docs/SPEC.md,
// "Errors and resets").
func TestDecodingAnswersWellFormedRequestsOutOfRange(t *testing.T) {
	withRef := func(body []byte, kind byte, capability ...byte) []byte {
		b := bytes.Clone(body)
		b[5] = kind
		copy(b[6:], capability)
		return b
	}
	fetch := requestBody(t, Request{ID: 9, Op: OpFetch})
	ack := requestBody(t, Request{ID: 9, Op: OpAck, IDs: []uint64{1}})
	bigLimit := bytes.Clone(fetch)
	binary.BigEndian.PutUint16(bigLimit[len(bigLimit)-2:], MaxFetchLimit+1)
	manyIDs := func(n int) []byte {
		b := requestBody(t, Request{ID: 9, Op: OpAck})
		binary.BigEndian.PutUint16(b[len(b)-2:], uint16(n))
		return append(b, make([]byte, 8*n)...)
	}
	credential := func(n int) []byte { return append(requestBody(t, Request{ID: 9, Op: OpRedeem}), make([]byte, n)...) }
	issuance := func(n int) []byte { return append(requestBody(t, Request{ID: 9, Op: OpIssue}), make([]byte, n)...) }
	tests := []struct {
		name string
		body []byte
		want Code
	}{
		{"an unknown op", []byte{99, 0, 0, 0, 9}, CodeUnsupported},
		{"an unknown op with fields", []byte{0, 0, 0, 0, 9, 1, 2, 3}, CodeUnsupported},
		{"a send with an empty packet", requestBody(t, Request{ID: 9, Op: OpSend, Packet: []byte{1}})[:37], CodeBadRequest},
		{"a fetch with a limit over the maximum", bigLimit, CodeBadRequest},
		{"a fetch of mailbox kind 2", withRef(fetch, 2), CodeBadRequest},
		{"a fetch of the own mailbox with a capability", withRef(fetch, 0, 0, 1), CodeBadRequest},
		{"an ack of the own mailbox with a capability", withRef(ack, 0, 1), CodeBadRequest},
		{"an ack of more IDs than allowed", manyIDs(MaxAckIDs + 1), CodeBadRequest},
		{"an ack of as many IDs as a frame holds", manyIDs((MaxRequestLength - 5 - mailboxRefLength - 2) / 8), CodeBadRequest},
		{"a redeem of a credential over the limit", credential(MaxCredentialLength + 1), CodeBadRequest},
		{"a redeem of as long a credential as a frame holds", credential(MaxRequestLength - 5 - 16), CodeBadRequest},
		{"an issue of a request over the limit", issuance(MaxIssueLength + 1), CodeBadRequest},
		{"an issue of as long a request as a frame holds", issuance(MaxRequestLength - 5 - 8), CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run("a request decoder answers "+tt.name+" with "+tt.want.String(), func(t *testing.T) {
			var r Request
			err := r.Decode(tt.body)
			var e *Error
			if !errors.As(err, &e) || e.Code != tt.want || errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want an *Error of code %s", err, tt.want)
			}
			if r.ID != 9 || r.Op != Op(tt.body[0]) {
				t.Fatalf("decoded ID %d op %d, want the request's for the reply", r.ID, r.Op)
			}
			if e.Message == "" || len(e.Message) > MaxErrorMessageLength {
				t.Fatalf("reason %q", e.Message)
			}
		})
	}
	for _, n := range []int{MaxAckIDs, 0} {
		if err := new(Request).Decode(manyIDs(n)); err != nil {
			t.Fatalf("an ack of %d IDs: %v", n, err)
		}
	}
	if err := new(Request).Decode(credential(MaxCredentialLength)); err != nil {
		t.Fatalf("a credential of the largest length: %v", err)
	}
}

// The reply limit holds the largest document the PKI encoding allows
// (docs/SPEC.md, "Client protocol", Limits): its fixed part measured on a
// real encoding with the longest network name.
func TestTheDocumentLimitIsTheEncodings(t *testing.T) {
	params := pkidoc.NetworkParams{Hops: 3, PayloadLen: 2048, Layers: 3, EpochPeriod: time.Minute,
		Genesis: time.Unix(1_700_000_000, 0), EpochGrace: time.Second, DownstreamInterval: time.Second, DownstreamSlots: 1}
	doc := pkidoc.Document{Network: strings.Repeat("n", pkidoc.MaxNetworkLen), Epoch: 1, Params: params}
	enc, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) != maxDocumentHeader {
		t.Fatalf("a document without nodes has %d bytes, the limit counts %d", len(enc), maxDocumentHeader)
	}
	if MaxDocumentLength < pkidoc.MaxDocumentSize {
		t.Fatalf("MaxDocumentLength %d is below pkidoc.MaxDocumentSize %d", MaxDocumentLength, pkidoc.MaxDocumentSize)
	}
	if MaxDocumentLength != 16_785_564 || MaxResponseLength != 16_785_570 || MaxRequestLength != 16_421 {
		t.Fatalf("limits %d, %d, %d differ from docs/SPEC.md", MaxDocumentLength, MaxResponseLength, MaxRequestLength)
	}
}

func TestReadFrame(t *testing.T) {
	frame := func(n int) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(n))
		return append(b, bytes.Repeat([]byte{7}, n)...)
	}
	tests := []struct {
		name    string
		in      []byte
		max     int
		buf     []byte
		wantLen int
		wantErr error
	}{
		{"a frame within the limit is read into the buffer", frame(10), 100, make([]byte, 0, 16), 10, nil},
		{"a frame larger than the buffer grows it", frame(200_000), 300_000, nil, 200_000, nil},
		{"an empty frame is an empty body", frame(0), 10, nil, 0, nil},
		{"a frame over the limit is refused before reading it", frame(101), 100, nil, 0, ErrMalformed},
		{"a clean end between frames is EOF", nil, 10, nil, 0, io.EOF},
		{"a cut header is unexpected EOF", []byte{0, 0}, 10, nil, 0, io.ErrUnexpectedEOF},
		{"a cut small body is unexpected EOF", frame(10)[:8], 100, make([]byte, 16), 0, io.ErrUnexpectedEOF},
		{"a cut large body is unexpected EOF", frame(200_000)[:100_000], 300_000, nil, 0, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ReadFrame(bytes.NewReader(tt.in), tt.buf, tt.max)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && len(b) != tt.wantLen {
				t.Fatalf("body of %d bytes, want %d", len(b), tt.wantLen)
			}
		})
	}
}

func TestReadFrameGrowsWithWhatArrives(t *testing.T) {
	// A peer announcing the largest response and sending 10 bytes must
	// not cost the whole announced size.
	in := binary.BigEndian.AppendUint32(nil, MaxResponseLength)
	in = append(in, make([]byte, 10)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadFrame(bytes.NewReader(in), nil, MaxResponseLength)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("allocated %d bytes for a 10-byte body", grew)
	}
}

func frameSeeds(f *testing.F, frames [][]byte) {
	for _, fr := range frames {
		f.Add(fr[FrameHeaderLength:])
	}
}

func FuzzRequestDecode(f *testing.F) {
	var frames [][]byte
	for _, r := range sampleRequests() {
		fr, err := r.AppendFrame(nil)
		if err != nil {
			f.Fatal(err)
		}
		frames = append(frames, fr)
	}
	frameSeeds(f, frames)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if err := r.Decode(b); err != nil {
			return
		}
		// The encoding is canonical: what decodes re-encodes to itself.
		fr, err := r.AppendFrame(nil)
		if err != nil {
			t.Fatalf("decoded request does not encode: %v", err)
		}
		if !bytes.Equal(fr[FrameHeaderLength:], b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", fr[FrameHeaderLength:], b)
		}
	})
}

func FuzzResponseDecode(f *testing.F) {
	var frames [][]byte
	for _, r := range sampleResponses() {
		fr, err := r.AppendFrame(nil)
		if err != nil {
			f.Fatal(err)
		}
		frames = append(frames, fr)
	}
	frameSeeds(f, frames)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Response
		if err := r.Decode(b); err != nil {
			return
		}
		fr, err := r.AppendFrame(nil)
		if err != nil {
			t.Fatalf("decoded response does not encode: %v", err)
		}
		if !bytes.Equal(fr[FrameHeaderLength:], b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", fr[FrameHeaderLength:], b)
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	for _, r := range sampleRequests()[:3] {
		fr, _ := r.AppendFrame(nil)
		f.Add(fr)
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		rd := bytes.NewReader(b)
		for {
			body, err := ReadFrame(rd, nil, MaxRequestLength)
			if err != nil {
				return
			}
			if len(body) > MaxRequestLength {
				t.Fatalf("body of %d bytes over the limit", len(body))
			}
			var r Request
			_ = r.Decode(body)
		}
	})
}
