package plugintest

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RawCodec sends and receives message bytes as they are, so a fuzzer
// reaches a plugin's server (or the host's client) with bytes no generated
// type has vetted. Its name is "proto", so the peer decodes the bytes as
// its own protobuf message.
type RawCodec struct{}

// Marshal returns the bytes *v holds; v must be a *[]byte.
func (RawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("plugintest.RawCodec: %T", v)
	}
	return *b, nil
}

// Unmarshal copies data into *v; v must be a *[]byte.
func (RawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("plugintest.RawCodec: %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

// Name is "proto": the wire format the peer expects.
func (RawCodec) Name() string { return "proto" }

// FuzzWire calls the method methods[sel % len] of service (a full gRPC
// service name such as "sotto.pki.v1.PKI") on conn with raw as the request
// bytes, and fails t unless the server answered with a result or a status
// error that says what went wrong: a non-status error, Unknown (a panic
// recovered or an unclassified error) or Unimplemented for a listed method
// fail. It is the body of the plugin servers' wire fuzz targets.
func FuzzWire(t *testing.T, conn *grpc.ClientConn, service string, methods []string, sel uint8, raw []byte) {
	t.Helper()
	name := methods[int(sel)%len(methods)]
	var out []byte
	err := conn.Invoke(context.Background(), "/"+service+"/"+name, &raw, &out, grpc.ForceCodec(RawCodec{}))
	if err == nil {
		return
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("%s: a non-status error %v", name, err)
	}
	if st.Code() == codes.Unknown || st.Code() == codes.Unimplemented {
		t.Fatalf("%s: bad input gave %v", name, err)
	}
}
