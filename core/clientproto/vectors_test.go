package clientproto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// The vector file (testdata/client_protocol_vectors.json; its "format"
// field explains it) is written and replayed against a real provider by
// host/provider's TestClientProtocolVectors. Here the codecs check
// themselves against it without a network, as a client in another
// language would: a request the provider resets does not read or decode,
// one it answers decodes (or Decode names the code to answer), and every
// reply decodes to the request's op and ID and re-encodes to its bytes.
func TestDecodersAgreeWithTheVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/client_protocol_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []struct {
			Name  string `json:"name"`
			Steps []struct {
				Request string `json:"request"`
				Reset   bool   `json:"reset"`
				Code    *Code  `json:"code"`
				Reply   string `json:"reply"`
			} `json:"steps"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range file.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			for i, s := range v.Steps {
				req := unhex(t, s.Request)
				var r Request
				body, err := ReadFrame(bytes.NewReader(req), nil, MaxRequestLength)
				if err == nil {
					err = r.Decode(body)
				}
				var answer *Error
				switch {
				case s.Reset:
					if !errors.Is(err, ErrMalformed) {
						t.Fatalf("step %d: a request the provider resets reads as %v, want ErrMalformed", i, err)
					}
					continue
				case s.Code == nil:
					t.Fatalf("step %d: neither a reset nor a code", i)
				case errors.As(err, &answer):
					if answer.Code != *s.Code {
						t.Fatalf("step %d: Decode answers %s, the provider %s", i, answer.Code, *s.Code)
					}
				case err != nil:
					t.Fatalf("step %d: a request the provider answers does not decode: %v", i, err)
				default:
					// Decoded: the code is the provider's to give.
				}
				if s.Reply == "" {
					continue
				}
				frame := unhex(t, s.Reply)
				body, err = ReadFrame(bytes.NewReader(frame), nil, MaxResponseLength)
				if err != nil {
					t.Fatalf("step %d: reply frame: %v", i, err)
				}
				var resp Response
				if err := resp.Decode(body); err != nil {
					t.Fatalf("step %d: reply: %v", i, err)
				}
				if resp.Op != r.Op || resp.ID != r.ID || resp.Code != *s.Code {
					t.Fatalf("step %d: reply op %s ID %d code %s, want op %s ID %d code %s", i, resp.Op, resp.ID, resp.Code, r.Op, r.ID, *s.Code)
				}
				again, err := resp.AppendFrame(nil)
				if err != nil || !bytes.Equal(again, frame) {
					t.Fatalf("step %d: the reply re-encodes to %x, %v", i, again, err)
				}
			}
		})
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
