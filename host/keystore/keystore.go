// Package keystore keeps a node's secret keys in its data directory: the
// Ed25519 identity that signs its PKI descriptors, and one X25519 Sphinx key
// per epoch, which mixes use to unwrap packets. `sotto keygen` creates them;
// the node opens them at start and rotates the Sphinx keys at every epoch
// boundary (keys for the current and next three epochs: a descriptor
// publishes three, and the next epoch's descriptor goes out before that epoch
// starts; expired keys are erased).
//
// The libp2p key is the identity key itself (libp2p supports Ed25519), so
// a node's peer ID and its PKI identity are bound without a second secret to
// guard, and a descriptor's PeerID can be checked against its Identity.
//
// Keys live in DATA_DIR/keys (mode 0700), one file per key (mode 0600),
// written atomically (temporary file, fsync, rename). Opening refuses a
// directory or file that others may read or write, and any file that does
// not decode as the format in format.go, with an error naming the file.
package keystore

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/sphinx"
)

// KeyEpochs is how many Sphinx keys a descriptor publishes: its epoch's
// and the next two. Rotate keeps one more, for the next epoch's descriptor.
const KeyEpochs = 3

const (
	keysDirName  = "keys"
	identityName = "identity.key"
	sphinxPrefix = "sphinx-"
	keySuffix    = ".key"
	dirMode      = 0o700
	fileMode     = 0o600
)

// Errors of the keystore. Every error names the file it is about.
var (
	// ErrPermissions: a key file or the key directory is open to group or others.
	ErrPermissions = errors.New("keystore: permissions too open")
	// ErrCorrupt: a key file does not decode (bad encoding, wrong length,
	// unknown version, checksum mismatch).
	ErrCorrupt = errors.New("keystore: corrupt key file")
	// ErrNoIdentity: the data directory has no identity key. Wraps fs.ErrNotExist.
	ErrNoIdentity = fmt.Errorf("keystore: no identity key (run `sotto keygen`): %w", fs.ErrNotExist)
)

// Dir returns the key directory of a data directory.
func Dir(dataDir string) string { return filepath.Join(dataDir, keysDirName) }

// Keystore is the open set of a node's keys. It is safe for concurrent use.
type Keystore struct {
	dir string

	mu       sync.Mutex
	identity ed25519.PrivateKey
	sphinx   map[epoch.Epoch]*sphinx.PrivateKey
}

// Init creates the data and key directories if needed and an identity key
// if there is none, then opens the keystore. An existing identity is kept:
// Init never replaces a key.
func Init(dataDir string, rand io.Reader) (ks *Keystore, created bool, err error) {
	dir := Dir(dataDir)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, false, fmt.Errorf("keystore: %w", err)
	}
	if err := checkDir(dir); err != nil {
		return nil, false, err
	}
	path := filepath.Join(dir, identityName)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := io.ReadFull(rand, seed); err != nil {
			return nil, false, fmt.Errorf("keystore: reading randomness: %w", err)
		}
		data := encodeKey(typeIdentity, 0, seed)
		clear(seed)
		err := writeFile(dir, identityName, data)
		clear(data)
		if err != nil {
			return nil, false, err
		}
		created = true
	}
	ks, err = Open(dataDir)
	return ks, created, err
}

// Open loads every key of a data directory. It returns all problems at
// once (errors.Join), each naming its file, so that `sotto node --check`
// can list them.
func Open(dataDir string) (*Keystore, error) {
	dir := Dir(dataDir)
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	ks := &Keystore{dir: dir, sphinx: map[epoch.Epoch]*sphinx.PrivateKey{}}
	var errs []error
	if seed, err := readKey(dir, identityName, typeIdentity, nil); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w: %s", ErrNoIdentity, filepath.Join(dir, identityName))
		}
		errs = append(errs, err)
	} else {
		ks.identity = ed25519.NewKeyFromSeed(seed)
		clear(seed)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, sphinxPrefix) || !strings.HasSuffix(name, keySuffix) {
			continue // temporary files and anything else are not keys
		}
		ep, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, sphinxPrefix), keySuffix), 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: name does not carry an epoch number", ErrCorrupt, filepath.Join(dir, name)))
			continue
		}
		b, err := readKey(dir, name, typeSphinx, &ep)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		k, err := sphinx.NewPrivateKey(b)
		clear(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrCorrupt, filepath.Join(dir, name), err))
			continue
		}
		ks.sphinx[ep] = k
	}
	if len(errs) > 0 {
		ks.Close()
		return nil, errors.Join(errs...)
	}
	return ks, nil
}

// Identity returns the node's Ed25519 identity key.
func (ks *Keystore) Identity() ed25519.PrivateKey {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.identity
}

// Libp2pKey returns the identity as a libp2p key (they are the same key).
func (ks *Keystore) Libp2pKey() (crypto.PrivKey, error) {
	k, err := crypto.UnmarshalEd25519PrivateKey(ks.Identity())
	if err != nil {
		return nil, fmt.Errorf("keystore: identity as libp2p key: %w", err)
	}
	return k, nil
}

// PeerID returns the libp2p peer ID of the identity.
func (ks *Keystore) PeerID() (peer.ID, error) {
	k, err := ks.Libp2pKey()
	if err != nil {
		return "", err
	}
	return peer.IDFromPrivateKey(k)
}

// Sphinx returns the Sphinx key of epoch e, if the keystore holds it.
func (ks *Keystore) Sphinx(e epoch.Epoch) (*sphinx.PrivateKey, bool) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	k, ok := ks.sphinx[e]
	return k, ok
}

// Epochs returns the epochs the keystore holds Sphinx keys for, in order.
func (ks *Keystore) Epochs() []epoch.Epoch {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	out := make([]epoch.Epoch, 0, len(ks.sphinx))
	for e := range ks.sphinx {
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}

// PublicKeys returns the Sphinx public keys of epochs from .. from+2, as a
// descriptor for epoch from carries them.
func (ks *Keystore) PublicKeys(from epoch.Epoch) ([KeyEpochs][sphinx.KeySize]byte, error) {
	var out [KeyEpochs][sphinx.KeySize]byte
	for i := range KeyEpochs {
		k, ok := ks.Sphinx(from + epoch.Epoch(i))
		if !ok {
			return out, fmt.Errorf("keystore: no Sphinx key for epoch %d in %s (run `sotto keygen`)", from+epoch.Epoch(i), ks.dir)
		}
		copy(out[i][:], k.PublicKey().Bytes())
	}
	return out, nil
}

// Rotation says what Rotate changed.
type Rotation struct {
	Created []epoch.Epoch
	Deleted []epoch.Epoch
}

// Rotate makes sure keys exist for the epoch of now and the next KeyEpochs
// (one more than a descriptor carries, so that the descriptor for the next
// epoch can be published before that epoch starts), and
// erases the keys that clk says have expired at now (their grace period is
// over): the file is overwritten with zeros before it is removed, and the
// key in memory is zeroed, so a caller must stop using a key once Rotate
// reports it deleted. Overwriting a file does not reach copies a
// journaling or copy-on-write file system may keep; full-disk encryption
// covers those.
func (ks *Keystore) Rotate(clk epoch.Clock, now time.Time, rand io.Reader) (Rotation, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	var r Rotation
	cur := clk.At(now)
	for e := cur; e <= cur+KeyEpochs; e++ {
		if _, ok := ks.sphinx[e]; ok {
			continue
		}
		k, err := sphinx.GenerateKey(rand)
		if err != nil {
			return r, fmt.Errorf("keystore: epoch %d: %w", e, err)
		}
		b := k.Bytes()
		data := encodeKey(typeSphinx, e, b)
		clear(b)
		err = writeFile(ks.dir, sphinxName(e), data)
		clear(data)
		if err != nil {
			return r, err
		}
		ks.sphinx[e] = k
		r.Created = append(r.Created, e)
	}
	for e, k := range ks.sphinx {
		if !clk.Expired(e, now) {
			continue
		}
		if err := eraseFile(filepath.Join(ks.dir, sphinxName(e))); err != nil {
			return r, err
		}
		*k = sphinx.PrivateKey{}
		delete(ks.sphinx, e)
		r.Deleted = append(r.Deleted, e)
	}
	slices.Sort(r.Deleted)
	return r, nil
}

// Close zeroes the keys held in memory. The keystore is unusable after.
func (ks *Keystore) Close() {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	clear(ks.identity)
	ks.identity = nil
	for e, k := range ks.sphinx {
		*k = sphinx.PrivateKey{}
		delete(ks.sphinx, e)
	}
}

func sphinxName(e epoch.Epoch) string {
	return sphinxPrefix + strconv.FormatUint(e, 10) + keySuffix
}

func checkDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: key directory %s does not exist", ErrNoIdentity, dir)
		}
		return fmt.Errorf("keystore: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("keystore: %s is not a directory", dir)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("%w: key directory %s has mode %04o, want %04o (owner only): chmod 700 %s", ErrPermissions, dir, m, dirMode, dir)
	}
	return nil
}

// readKey reads, checks and decodes one key file. wantEpoch, if set, must
// match the file's Epoch header.
func readKey(dir, name, typ string, wantEpoch *uint64) ([]byte, error) {
	path := filepath.Join(dir, name)
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keystore: %s is not a regular file (%v)", path, fi.Mode().Type())
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return nil, fmt.Errorf("%w: key file %s has mode %04o, want %04o (owner only): chmod 600 %s", ErrPermissions, path, m, fileMode, path)
	}
	if fi.Size() > 4096 {
		return nil, fmt.Errorf("%w: %s is %d bytes, far larger than a key file", ErrCorrupt, path, fi.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	defer clear(data)
	ep, key, err := decodeKey(typ, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if wantEpoch != nil && ep != *wantEpoch {
		clear(key)
		return nil, fmt.Errorf("%w: %s: holds the key of epoch %d, its name says %d", ErrCorrupt, path, ep, *wantEpoch)
	}
	return key, nil
}

// writeFile writes data to dir/name atomically with mode 0600.
func writeFile(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, ".tmp-"+name+"-*")
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(fileMode); err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("keystore: writing %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	return syncDir(dir)
}

// eraseFile overwrites a key file with zeros, then removes it.
func eraseFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("keystore: %w", err)
	}
	fi, err := f.Stat()
	if err == nil {
		_, err = f.Write(make([]byte, fi.Size()))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("keystore: erasing %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keystore: syncing %s: %w", dir, err)
	}
	return nil
}
