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
	verdictFull                        // the epoch is full and this one does not outrank anyone held
)

type epochState struct {
	byID     map[string]*interfaces.SignedDescriptor // admitted, not excluded
	rank     map[string][]byte                       // identity → rank, under a ranked policy
	evidence map[string]interfaces.Equivocation      // excluded identities: both faces
	msgs     map[string][]byte                       // descriptor bytes → the gossip message it came in
	doc      *interfaces.Document                    // cached; nil when stale
	hash     [32]byte
}

// store holds every verified descriptor per epoch, with the gossip message
// (descriptor and admission proof) it arrived in. It assumes its callers
// have verified signatures, the epoch window and admission.
type store struct {
	mu       sync.Mutex
	epochs   map[uint64]*epochState
	dir      string // "" means memory only
	maxNodes int    // identities per epoch; beyond it a document could not be encoded
}

func newStore(dir string) *store {
	return &store{epochs: map[uint64]*epochState{}, dir: dir, maxNodes: interfaces.MaxDocumentNodes}
}

// add stores sd, which arrived in msg. capacity (0: none) caps the epoch's
// admitted identities below maxNodes; under a cap, a newcomer with a lower
// rank than the worst held takes its place (ties: lower identity), so that
// every member keeps the same identities whatever order they came in.
func (s *store) add(sd *interfaces.SignedDescriptor, msg, rank []byte, capacity int) (verdict, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := sd.Descriptor.Epoch
	st := s.epochs[e]
	if st == nil {
		st = &epochState{byID: map[string]*interfaces.SignedDescriptor{}, rank: map[string][]byte{},
			evidence: map[string]interfaces.Equivocation{}, msgs: map[string][]byte{}}
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
		delete(st.byID, id)
		delete(st.rank, id) // an excluded identity holds no place under a cap
		st.msgs[string(sd.Raw)] = msg
		st.doc = nil
		return verdictEquivocation, s.persist(e, record{msg, rank})
	}
	limit := s.maxNodes
	if capacity > 0 {
		limit = min(limit, capacity)
	}
	if len(st.byID) >= limit {
		worst := ""
		if capacity > 0 && rank != nil {
			worst = st.worst()
		}
		if worst == "" || compareRank(rank, id, st.rank[worst], worst) >= 0 {
			// Unranked: first come, first served: a Sybil flood can crowd
			// out late honest nodes (docs/SPEC.md says so), but cannot make
			// the document unencodable for everyone.
			return verdictFull, nil
		}
		delete(st.msgs, string(st.byID[worst].Raw))
		delete(st.byID, worst)
		delete(st.rank, worst)
	}
	st.byID[id] = sd
	if rank != nil {
		st.rank[id] = bytes.Clone(rank)
	}
	st.msgs[string(sd.Raw)] = msg
	st.doc = nil
	return verdictNew, s.persist(e, record{msg, rank})
}

func compareRank(ra []byte, ida string, rb []byte, idb string) int {
	if c := bytes.Compare(ra, rb); c != 0 {
		return c
	}
	return strings.Compare(ida, idb)
}

// worst is the held identity with the highest rank ("" if none is ranked).
func (st *epochState) worst() string {
	worst := ""
	for id, r := range st.rank {
		if worst == "" || compareRank(r, id, st.rank[worst], worst) > 0 {
			worst = id
		}
	}
	return worst
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
	for _, sd := range st.byID {
		nodes = append(nodes, sd)
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
	return hashRaws(s.raws(e))
}

// hashRaws is the state hash of descriptors sorted by bytes (zero: none).
func hashRaws(raws [][]byte) [32]byte {
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
	return st.raws()
}

func (st *epochState) raws() [][]byte {
	out := make([][]byte, 0, len(st.byID)+2*len(st.evidence))
	for _, sd := range st.byID {
		out = append(out, sd.Raw)
	}
	for _, ev := range st.evidence {
		out = append(out, ev.A.Raw, ev.B.Raw)
	}
	slices.SortFunc(out, bytes.Compare)
	return out
}

// messages lists the gossip messages of every descriptor held for an epoch,
// in the order of raws.
func (s *store) messages(e uint64) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.epochs[e]
	if st == nil {
		return nil
	}
	raws := st.raws()
	out := make([][]byte, 0, len(raws))
	for _, r := range raws {
		out = append(out, st.msgs[string(r)])
	}
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
	return filepath.Join(s.dir, "epoch-"+strconv.FormatUint(e, 10)+stateSuffix)
}

// stateSuffix names the per-epoch files of gossip messages. (Files of bare
// descriptors, ".desc", from before admission are not read: their
// descriptors carry no proof.)
const stateSuffix = ".msgs"

// record is one persisted gossip message with the rank its admission
// gave it (nil when unranked).
type record struct {
	msg, rank []byte
}

// persist appends one record (u16 length ‖ gossip message ‖ u8 length ‖
// rank) to the epoch's file. A torn last record after a crash is skipped on
// load.
func (s *store) persist(e uint64, r record) error {
	if s.dir == "" {
		return nil
	}
	f, err := os.OpenFile(s.path(e), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("pki-gossip: persisting: %w", err)
	}
	rec := binary.BigEndian.AppendUint16(nil, uint16(len(r.msg)))
	rec = append(rec, r.msg...)
	rec = append(rec, byte(len(r.rank)))
	rec = append(rec, r.rank...)
	if _, err := f.Write(rec); err != nil {
		f.Close()
		return fmt.Errorf("pki-gossip: persisting: %w", err)
	}
	return f.Close()
}

// loadRecords reads the persisted records of every epoch from dir, oldest
// epoch first. Records are returned raw: the caller re-verifies them.
func loadRecords(dir string) ([]record, error) {
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
		num, ok2 := strings.CutSuffix(num, stateSuffix)
		e, err := strconv.ParseUint(num, 10, 64)
		if ok && ok2 && err == nil {
			files = append(files, file{e, de.Name()})
		}
	}
	slices.SortFunc(files, func(a, b file) int { return cmp.Compare(a.epoch, b.epoch) })
	var out []record
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return nil, fmt.Errorf("pki-gossip: reading state: %w", err)
		}
		for len(b) >= 3 {
			n := int(binary.BigEndian.Uint16(b))
			if len(b) < 2+n+1 || len(b) < 2+n+1+int(b[2+n]) {
				break // torn tail
			}
			r := int(b[2+n])
			rec := record{msg: b[2 : 2+n]}
			if r > 0 {
				rec.rank = b[3+n : 3+n+r]
			}
			out = append(out, rec)
			b = b[3+n+r:]
		}
	}
	return out, nil
}

// prepareStateDir creates dir (0700, parents too) if it does not exist and
// proves it writable, so that persistence is never silently off: a member
// that cannot keep its state refuses to start with an error naming the
// directory.
func prepareStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki-gossip: state_dir %q cannot be created: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("pki-gossip: state_dir %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("pki-gossip: state_dir %q is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("pki-gossip: state_dir %q is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("pki-gossip: state_dir %q: %w", dir, err)
	}
	return nil
}
