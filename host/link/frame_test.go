package link

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

const testPacketLength = 3082 // a Sphinx packet: 5 hops, 2 KiB user payload

func packet(fill byte) []byte { return bytes.Repeat([]byte{fill}, testPacketLength) }

func TestFramesRoundTrip(t *testing.T) {
	var stream bytes.Buffer
	w, err := NewWriter(&stream, testPacketLength)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := w.WriteFrame(packet(byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if stream.Len() != 3*(FrameHeaderSize+testPacketLength) {
		t.Fatalf("stream of %d bytes", stream.Len())
	}
	r, err := NewReader(&stream, testPacketLength)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, testPacketLength)
	for i := range 3 {
		if err := r.ReadFrame(buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, packet(byte(i))) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if err := r.ReadFrame(buf); err != io.EOF {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
}

func header(version byte, n int) []byte {
	return []byte{version, byte(n >> 16), byte(n >> 8), byte(n)}
}

func TestReadFrameRefusesBadFrames(t *testing.T) {
	good := append(header(FrameVersion, testPacketLength), packet(1)...)
	tests := []struct {
		name   string
		stream []byte
		bufLen int
		is     error
	}{
		{"a frame of another version is refused", append(header(2, testPacketLength), packet(1)...), testPacketLength, ErrFrameVersion},
		{"a frame one byte short is refused", append(header(FrameVersion, testPacketLength-1), packet(1)[1:]...), testPacketLength, ErrFrameSize},
		{"a frame from a larger geometry is refused", append(header(FrameVersion, 5000), make([]byte, 5000)...), testPacketLength, ErrFrameSize},
		{"an empty frame is refused", header(FrameVersion, 0), testPacketLength, ErrFrameSize},
		{"a stream cut inside the header is unexpected", good[:2], testPacketLength, io.ErrUnexpectedEOF},
		{"a stream cut inside the packet is unexpected", good[:100], testPacketLength, io.ErrUnexpectedEOF},
		{"a buffer of the wrong size is refused", good, testPacketLength + 1, ErrFrameSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(tt.stream), testPacketLength)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.ReadFrame(make([]byte, tt.bufLen)); !errors.Is(err, tt.is) {
				t.Errorf("ReadFrame = %v, want %v", err, tt.is)
			}
		})
	}
}

func TestWriteFrameRefusesAPacketOfTheWrongSize(t *testing.T) {
	var stream bytes.Buffer
	w, _ := NewWriter(&stream, testPacketLength)
	if err := w.WriteFrame(make([]byte, testPacketLength-1)); !errors.Is(err, ErrFrameSize) {
		t.Errorf("WriteFrame = %v, want ErrFrameSize", err)
	}
	if stream.Len() != 0 {
		t.Errorf("%d bytes written for a refused packet", stream.Len())
	}
}

func TestNewReaderAndWriterRefuseImpossibleLengths(t *testing.T) {
	for _, n := range []int{0, -1, MaxPacketLength + 1} {
		if _, err := NewReader(nil, n); !errors.Is(err, ErrFrameSize) {
			t.Errorf("NewReader(%d) = %v", n, err)
		}
		if _, err := NewWriter(nil, n); !errors.Is(err, ErrFrameSize) {
			t.Errorf("NewWriter(%d) = %v", n, err)
		}
	}
}

func TestFramingDoesNotAllocate(t *testing.T) {
	stream := bytes.NewReader(nil)
	frame := append(header(FrameVersion, testPacketLength), packet(9)...)
	r, _ := NewReader(stream, testPacketLength)
	w, _ := NewWriter(io.Discard, testPacketLength)
	buf := make([]byte, testPacketLength)
	allocs := testing.AllocsPerRun(100, func() {
		stream.Reset(frame)
		if err := r.ReadFrame(buf); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteFrame(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame read and written, want 0", allocs)
	}
}

func BenchmarkReadFrame(b *testing.B) {
	frame := append(header(FrameVersion, testPacketLength), packet(9)...)
	stream := bytes.NewReader(nil)
	r, _ := NewReader(stream, testPacketLength)
	buf := make([]byte, testPacketLength)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		stream.Reset(frame)
		if err := r.ReadFrame(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	const n = 64
	f.Add(append(header(FrameVersion, n), make([]byte, n)...))
	f.Add(append(append(header(FrameVersion, n), make([]byte, n)...), header(FrameVersion, n)...))
	f.Add(header(FrameVersion, n-1))
	f.Add(header(0, n))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, stream []byte) {
		r, err := NewReader(bytes.NewReader(stream), n)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, n)
		frames := 0
		for {
			err := r.ReadFrame(buf)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrFrameVersion) && !errors.Is(err, ErrFrameSize) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				if err == io.EOF && len(stream) != frames*(FrameHeaderSize+n) {
					t.Fatalf("clean EOF after %d frames of a %d-byte stream", frames, len(stream))
				}
				return
			}
			frames++
		}
	})
}
