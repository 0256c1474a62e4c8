package pkigossip

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/sottonet/sotto/interfaces"
)

// verdict is what the store made of one verified descriptor.
type verdict int

const (
	verdictNew          verdict = iota // first descriptor of its identity for its epoch
	verdictDuplicate                   // byte-identical to one held
	verdictEquivocation                // a second, different descriptor: new evidence
	verdictExcluded                    // the identity is already excluded; nothing new
	verdictFull                        // the epoch already holds as many identities as a document can
)

type epochState struct {
	byID     map[string]*interfaces.SignedDescriptor
	evidence map[string]interfaces.Equivocation
	doc      *interfaces.Document // cached; nil when stale
	hash     [32]byte
}

// store holds every verified descriptor per epoch. It assumes its callers
// have verified signatures and the epoch window.
type store struct {
	mu       sync.Mutex
	epochs   map[uint64]*epochState
	dir      string // "" means memory only
	maxNodes int    // identities per epoch; beyond it a document could not be encoded
}

func newStore(dir string) *store {
	return &store{epochs: map[uint64]*epochState{}, dir: dir, maxNodes: interfaces.MaxDocumentNodes}
}

func (s *store) add(sd *interfaces.SignedDescriptor) (verdict, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := sd.Descriptor.Epoch
	st := s.epochs[e]
	if st == nil {
		st = &epochState{byID: map[string]*interfaces.SignedDescriptor{}, evidence: map[string]interfaces.Equivocation{}}
		s.epochs[e] = st
	}
	id := string(sd.Descriptor.Identity)
	if _, bad := st.evidence[id]; bad {
		return verdictExcluded, nil
	}
	held, ok := st.byID[id]
	switch {
	case ok && bytes.Equal(held.Raw, sd.Raw):
		return verdictDuplicate, nil
	case ok:
		a, b := held, sd
		if bytes.Compare(a.Raw, b.Raw) > 0 {
			a, b = b, a
		}
		st.evidence[id] = interfaces.Equivocation{A: a, B: b}
		st.doc = nil
		return verdictEquivocation, s.persist(e, sd.Raw)
	}
	if len(st.byID) >= s.maxNodes {
		// First come, first served: a Sybil flood can crowd out late
		// honest nodes (docs/SPEC.md says so), but cannot make the
		// document unencodable for everyone.
		return verdictFull, nil
	}
	st.byID[id] = sd
	st.doc = nil
	return verdictNew, s.persist(e, sd.Raw)
}

// document assembles (and caches) the epoch's document: every held
// descriptor whose identity has not equivocated.
func (s *store) document(network string, e uint64, params interfaces.NetworkParams) (*interfaces.Document, [32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.epochs[e]
	if st == nil || len(st.byID) == 0 {
		return nil, [32]byte{}, fmt.Errorf("pki-gossip: no document yet for epoch %d: %w", e, interfaces.ErrNotFound)
	}
	if st.doc != nil {
		return st.doc, st.hash, nil
	}
	nodes := make([]*interfaces.SignedDescriptor, 0, len(st.byID))
	for id, sd := range st.byID {
		if _, bad := st.evidence[id]; !bad {
			nodes = append(nodes, sd)
		}
	}
	doc, err := interfaces.NewDocument(network, e, params, nodes)
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("pki-gossip: assembling epoch %d: %w", e, err)
	}
	h, err := doc.Hash()
	if err != nil {
		return nil, [32]byte{}, err
	}
	st.doc, st.hash = doc, h
	return doc, h, nil
}

// stateHash summarises everything held for an epoch, evidence included, so
// that two members whose documents agree but whose evidence differs still
// notice and sync. An empty epoch hashes to all zeroes.
func (s *store) stateHash(e uint64) [32]byte {
	raws := s.raws(e)
	if len(raws) == 0 {
		return [32]byte{}
	}
	h := sha256.New()
	for _, r := range raws {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(r))))
		h.Write(r)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// raws lists every descriptor held for an epoch, both halves of each
// equivocation included, sorted by bytes.
func (s *store) raws(e uint64) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.epochs[e]
	if st == nil {
		return nil
	}
	var out [][]byte
	for id, sd := range st.byID {
		out = append(out, sd.Raw)
		if ev, bad := st.evidence[id]; bad {
			other := ev.A
			if bytes.Equal(other.Raw, sd.Raw) {
				other = ev.B
			}
			out = append(out, other.Raw)
		}
	}
	slices.SortFunc(out, bytes.Compare)
	return out
}

func (s *store) evidence(e uint64) []interfaces.Equivocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.epochs[e]
	if st == nil {
		return nil
	}
	out := make([]interfaces.Equivocation, 0, len(st.evidence))
	for _, ev := range st.evidence {
		out = append(out, ev)
	}
	slices.SortFunc(out, func(a, b interfaces.Equivocation) int {
		return bytes.Compare(a.A.Descriptor.Identity, b.A.Descriptor.Identity)
	})
	return out
}

func (s *store) holds(sd *interfaces.SignedDescriptor) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.epochs[sd.Descriptor.Epoch]
	if st == nil {
		return false
	}
	held, ok := st.byID[string(sd.Descriptor.Identity)]
	return ok && bytes.Equal(held.Raw, sd.Raw)
}

func (s *store) excluded(e uint64, identity []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.epochs[e]
	if st == nil {
		return false
	}
	_, bad := st.evidence[string(identity)]
	return bad
}

// prune forgets every epoch before oldest, on disk too.
func (s *store) prune(oldest uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for e := range s.epochs {
		if e < oldest {
			delete(s.epochs, e)
			if s.dir != "" {
				_ = os.Remove(s.path(e))
			}
		}
	}
}

func (s *store) path(e uint64) string {
	return filepath.Join(s.dir, "epoch-"+strconv.FormatUint(e, 10)+".desc")
}

// persist appends one record (u16 length, descriptor) to the epoch's file.
// A torn last record after a crash is skipped on load.
func (s *store) persist(e uint64, raw []byte) error {
	if s.dir == "" {
		return nil
	}
	f, err := os.OpenFile(s.path(e), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("pki-gossip: persisting: %w", err)
	}
	rec := binary.BigEndian.AppendUint16(nil, uint16(len(raw)))
	rec = append(rec, raw...)
	if _, err := f.Write(rec); err != nil {
		f.Close()
		return fmt.Errorf("pki-gossip: persisting: %w", err)
	}
	return f.Close()
}

// loadRecords reads the persisted descriptors of every epoch from dir,
// oldest epoch first. Records are returned raw: the caller re-verifies them
// as if they came from the network.
func loadRecords(dir string) ([][]byte, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pki-gossip: reading state: %w", err)
	}
	type file struct {
		epoch uint64
		name  string
	}
	var files []file
	for _, de := range entries {
		num, ok := strings.CutPrefix(de.Name(), "epoch-")
		num, ok2 := strings.CutSuffix(num, ".desc")
		e, err := strconv.ParseUint(num, 10, 64)
		if ok && ok2 && err == nil {
			files = append(files, file{e, de.Name()})
		}
	}
	slices.SortFunc(files, func(a, b file) int { return cmp.Compare(a.epoch, b.epoch) })
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return nil, fmt.Errorf("pki-gossip: reading state: %w", err)
		}
		for len(b) >= 2 {
			n := int(binary.BigEndian.Uint16(b))
			if len(b)-2 < n {
				break // torn tail
			}
			out = append(out, b[2:2+n])
			b = b[2+n:]
		}
	}
	return out, nil
}
