// Package linkrec records what an observer of a client's access link sees
// of the client protocol, for tests: the size, time and direction of every
// frame on the client's streams to its provider, nothing of their content.
// Hook it into a client with client/p2p's Options.WrapStream; a client
// without it pays nothing.
//
// The recorder sits on the libp2p stream, inside the encrypted channel, so
// it sees frames (clientproto's length prefix and body), not the Noise
// and yamux framing around them: each frame leaves as one or more Noise
// messages whose sizes follow the frame's (plus 16 bytes of tag and 12 of
// yamux header each), so equal frame sizes and times give equal wire
// sizes and times.
package linkrec

import (
	"encoding/binary"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/sottonet/sotto/core/clientproto"
)

// Dir is a frame's direction.
type Dir uint8

const (
	Up   Dir = 1 // client to provider
	Down Dir = 2 // provider to client
)

func (d Dir) String() string {
	if d == Up {
		return "up"
	}
	return "down"
}

// Frame is one frame as an observer sees it.
type Frame struct {
	At     time.Time // when its last byte was written or read
	Dir    Dir
	Size   int // length prefix included
	Stream int // which of the client's streams (in the order opened)
	// Op is the frame's operation, which an observer does not see (it
	// is encrypted): for tests to tell, say, documents apart.
	Op clientproto.Op
}

// Recorder records the frames of every stream it wraps. Its methods are
// safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	frames  []Frame
	streams int
}

// New returns an empty Recorder.
func New() *Recorder { return &Recorder{} }

// WrapStream wraps st so that its frames are recorded (the signature of
// p2p.Options.WrapStream).
func (r *Recorder) WrapStream(st network.Stream) network.Stream {
	r.mu.Lock()
	r.streams++
	n := r.streams
	r.mu.Unlock()
	return &stream{Stream: st, up: splitter{rec: r, dir: Up, stream: n}, down: splitter{rec: r, dir: Down, stream: n}}
}

// Frames returns the frames recorded so far, in the order they completed.
func (r *Recorder) Frames() []Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.frames)
}

// Reset forgets what was recorded.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.frames = nil
	r.mu.Unlock()
}

func (r *Recorder) add(f Frame) {
	r.mu.Lock()
	r.frames = append(r.frames, f)
	r.mu.Unlock()
}

type stream struct {
	network.Stream
	up, down     splitter
	readMu, wrMu sync.Mutex
}

func (s *stream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if n > 0 {
		s.readMu.Lock()
		s.down.feed(p[:n], time.Now())
		s.readMu.Unlock()
	}
	return n, err
}

func (s *stream) Write(p []byte) (int, error) {
	n, err := s.Stream.Write(p)
	if n > 0 {
		s.wrMu.Lock()
		s.up.feed(p[:n], time.Now())
		s.wrMu.Unlock()
	}
	return n, err
}

// splitter cuts one direction's bytes into frames by their length
// prefixes.
type splitter struct {
	rec    *Recorder
	dir    Dir
	stream int
	hdr    [clientproto.FrameHeaderLength]byte
	nhdr   int
	op     clientproto.Op
	first  bool // the next body byte is the op
	left   int  // body bytes still to come
	size   int
}

func (s *splitter) feed(p []byte, at time.Time) {
	for len(p) > 0 {
		if s.nhdr < len(s.hdr) {
			c := copy(s.hdr[s.nhdr:], p)
			s.nhdr += c
			p = p[c:]
			if s.nhdr < len(s.hdr) {
				return
			}
			s.left = int(binary.BigEndian.Uint32(s.hdr[:]))
			s.size = len(s.hdr) + s.left
			s.first, s.op = true, 0
		}
		if s.first && s.left > 0 && len(p) > 0 {
			s.op, s.first = clientproto.Op(p[0]), false
		}
		c := min(s.left, len(p))
		s.left -= c
		p = p[c:]
		if s.left == 0 {
			s.rec.add(Frame{At: at, Dir: s.dir, Size: s.size, Stream: s.stream, Op: s.op})
			s.nhdr = 0
		}
	}
}
