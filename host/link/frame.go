// Package link carries Sphinx packets between nodes: the libp2p host a
// node runs (NewHost) and the framing of the /sotto/mix/1.0.0 stream
// protocol (Reader, Writer). It sits first and last in the packet path:
// frames come in here, go to the Sphinx unwrap, and leave here for the next
// hop.
//
// # Frames on /sotto/mix/1.0.0
//
// A stream is a sequence of frames, each a 4-byte header and a packet:
//
//	version (1 byte, = 1) | length (3 bytes, big-endian) | packet (length bytes)
//
// Every packet on a network has the same size (the Sphinx geometry's
// PacketLength), so length is redundant on a healthy stream; it is there so
// that a peer on another geometry or a desynchronised stream is refused at
// the first frame with an error naming both sizes, instead of being cut
// into misaligned packets that all fail their MAC. A receiver refuses a
// frame of another version or length and must then reset the stream: after
// a refused header the stream's framing is lost.
package link

import (
	"errors"
	"fmt"
	"io"
)

// MixProtocol is the libp2p protocol ID of packet streams between nodes.
const MixProtocol = "/sotto/mix/1.0.0"

// Frame constants.
const (
	FrameVersion    = 1
	FrameHeaderSize = 4
	// MaxPacketLength is the largest packet a 3-byte length can carry.
	MaxPacketLength = 1<<24 - 1
)

// Errors of the framing. Both leave the stream unusable.
var (
	// ErrFrameVersion: the frame's version byte is not FrameVersion.
	ErrFrameVersion = errors.New("link: unknown frame version")
	// ErrFrameSize: the frame's length is not the network's packet length,
	// or a packet to write has the wrong size.
	ErrFrameSize = errors.New("link: wrong frame size")
)

// Reader reads packet frames of one fixed size from a stream. It does not
// allocate per frame. It is not safe for concurrent use.
type Reader struct {
	r      io.Reader
	length int
	hdr    [FrameHeaderSize]byte
}

// NewReader returns a reader of frames carrying packets of packetLength
// bytes. packetLength must be in 1..MaxPacketLength.
func NewReader(r io.Reader, packetLength int) (*Reader, error) {
	if packetLength < 1 || packetLength > MaxPacketLength {
		return nil, fmt.Errorf("%w: packet length %d out of 1..%d", ErrFrameSize, packetLength, MaxPacketLength)
	}
	return &Reader{r: r, length: packetLength}, nil
}

// ReadFrame reads the next frame's packet into dst, which must be exactly
// the packet length. At a clean end of stream (between frames) it returns
// io.EOF; a stream that ends inside a frame gives io.ErrUnexpectedEOF.
func (fr *Reader) ReadFrame(dst []byte) error {
	if len(dst) != fr.length {
		return fmt.Errorf("%w: buffer of %d bytes for %d-byte packets", ErrFrameSize, len(dst), fr.length)
	}
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return fmt.Errorf("link: reading frame header: %w", err)
	}
	if fr.hdr[0] != FrameVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrFrameVersion, fr.hdr[0], FrameVersion)
	}
	n := int(fr.hdr[1])<<16 | int(fr.hdr[2])<<8 | int(fr.hdr[3])
	if n != fr.length {
		return fmt.Errorf("%w: frame of %d bytes, this network's packets are %d", ErrFrameSize, n, fr.length)
	}
	if _, err := io.ReadFull(fr.r, dst); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("link: reading %d-byte packet: %w", n, err)
	}
	return nil
}

// Writer writes packet frames of one fixed size to a stream, each in one
// Write call, without allocating per frame. It is not safe for concurrent use.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a writer of frames carrying packets of packetLength bytes.
func NewWriter(w io.Writer, packetLength int) (*Writer, error) {
	if packetLength < 1 || packetLength > MaxPacketLength {
		return nil, fmt.Errorf("%w: packet length %d out of 1..%d", ErrFrameSize, packetLength, MaxPacketLength)
	}
	buf := make([]byte, FrameHeaderSize+packetLength)
	buf[0] = FrameVersion
	buf[1], buf[2], buf[3] = byte(packetLength>>16), byte(packetLength>>8), byte(packetLength)
	return &Writer{w: w, buf: buf}, nil
}

// WriteFrame writes one packet, which must be exactly the packet length.
func (fw *Writer) WriteFrame(packet []byte) error {
	if len(packet) != len(fw.buf)-FrameHeaderSize {
		return fmt.Errorf("%w: packet of %d bytes, this network's packets are %d", ErrFrameSize, len(packet), len(fw.buf)-FrameHeaderSize)
	}
	copy(fw.buf[FrameHeaderSize:], packet)
	if _, err := fw.w.Write(fw.buf); err != nil {
		return fmt.Errorf("link: writing frame: %w", err)
	}
	return nil
}
