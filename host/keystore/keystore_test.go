package keystore

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/pkidoc"
)

var genesis = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func clock(t *testing.T) epoch.Clock {
	t.Helper()
	c, err := epoch.New(genesis, time.Hour, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// initialized returns a data dir with an identity and keys for epochs 5..7.
func initialized(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ks, _, err := Init(dir, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Rotate(clock(t), genesis.Add(5*time.Hour+time.Minute), rand.Reader); err != nil {
		t.Fatal(err)
	}
	ks.Close()
	return dir
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestInitCreatesAnOwnerOnlyIdentityAndKeepsIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ks, created, err := Init(dir, rand.Reader)
	if err != nil || !created {
		t.Fatalf("Init = %v, created %v", err, created)
	}
	if m := mode(t, Dir(dir)); m != 0o700 {
		t.Errorf("key directory mode %04o, want 0700", m)
	}
	if m := mode(t, filepath.Join(Dir(dir), identityName)); m != 0o600 {
		t.Errorf("identity mode %04o, want 0600", m)
	}
	id := bytes.Clone(ks.Identity())
	ks.Close()
	again, created, err := Init(dir, rand.Reader)
	if err != nil || created {
		t.Fatalf("second Init = %v, created %v", err, created)
	}
	if !bytes.Equal(again.Identity(), id) {
		t.Error("a second Init replaced the identity")
	}
	entries, _ := os.ReadDir(Dir(dir))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestTheLibp2pKeyIsTheIdentity(t *testing.T) {
	ks, err := Open(initialized(t))
	if err != nil {
		t.Fatal(err)
	}
	id, err := ks.PeerID()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := pub.Raw()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, ks.Identity().Public().(ed25519.PublicKey)) {
		t.Error("the peer ID's key is not the identity's public key")
	}
	// core/pkidoc derives the same bytes without libp2p; descriptors are
	// checked against its derivation, so the two must agree.
	bin, err := id.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if want := pkidoc.PeerIDOf(ks.Identity().Public().(ed25519.PublicKey)); !bytes.Equal(bin, want) {
		t.Errorf("libp2p peer ID %x, pkidoc.PeerIDOf %x", bin, want)
	}
}

func TestRotateKeepsFourEpochsAndErasesExpiredOnes(t *testing.T) {
	dataDir := initialized(t)
	ks, err := Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if got := ks.Epochs(); len(got) != 4 || got[0] != 5 || got[3] != 8 {
		t.Fatalf("epochs after keygen in epoch 5 = %v, want [5 6 7 8]", got)
	}
	for _, e := range ks.Epochs() {
		if m := mode(t, filepath.Join(Dir(dataDir), sphinxName(e))); m != 0o600 {
			t.Errorf("epoch %d key mode %04o, want 0600", e, m)
		}
	}
	pubs, err := ks.PublicKeys(5)
	if err != nil {
		t.Fatal(err)
	}
	k5, _ := ks.Sphinx(5)
	if !bytes.Equal(pubs[0][:], k5.PublicKey().Bytes()) {
		t.Error("PublicKeys(5)[0] is not epoch 5's public key")
	}
	if _, err := ks.PublicKeys(6); err != nil {
		t.Errorf("PublicKeys(6), the next epoch's descriptor: %v", err)
	}
	if _, err := ks.PublicKeys(7); err == nil {
		t.Error("PublicKeys(7) succeeded without a key for epoch 9")
	}

	// Early in epoch 6 the grace of epoch 5 still runs: nothing is erased.
	r, err := ks.Rotate(clock(t), genesis.Add(6*time.Hour+time.Minute), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Created) != 1 || r.Created[0] != 9 || len(r.Deleted) != 0 {
		t.Errorf("rotation in epoch 6's grace = %+v, want 9 created, none deleted", r)
	}
	// After the grace, epoch 5's key goes, on disk and in memory.
	r, err = ks.Rotate(clock(t), genesis.Add(6*time.Hour+11*time.Minute), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Created) != 0 || len(r.Deleted) != 1 || r.Deleted[0] != 5 {
		t.Errorf("rotation after the grace = %+v, want epoch 5 deleted", r)
	}
	if _, err := os.Stat(filepath.Join(Dir(dataDir), sphinxName(5))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("epoch 5's key file still there: %v", err)
	}
	if !bytes.Equal(k5.Bytes(), make([]byte, 32)) {
		t.Error("epoch 5's key was not zeroed in memory")
	}
	reopened, err := Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if got := reopened.Epochs(); len(got) != 4 || got[0] != 6 {
		t.Errorf("epochs after reopening = %v, want [6 7 8 9]", got)
	}
	k6, _ := ks.Sphinx(6)
	r6, _ := reopened.Sphinx(6)
	if !k6.Equal(r6) {
		t.Error("epoch 6's key read back differs from the one written")
	}
}

func TestOpenRefusesUnsafeOrCorruptKeys(t *testing.T) {
	sphinx6 := sphinxName(6)
	rewrite := func(name string, f func([]byte) []byte) func(t *testing.T, keys string) {
		return func(t *testing.T, keys string) {
			path := filepath.Join(keys, name)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, f(b), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	reblock := func(name string, f func(*pem.Block)) func(t *testing.T, keys string) {
		return rewrite(name, func(b []byte) []byte {
			blk, _ := pem.Decode(b)
			f(blk)
			return pem.EncodeToMemory(blk)
		})
	}
	tests := []struct {
		name  string
		spoil func(t *testing.T, keys string)
		is    error
		says  string
	}{
		{"an identity readable by others is refused", func(t *testing.T, keys string) {
			os.Chmod(filepath.Join(keys, identityName), 0o644)
		}, ErrPermissions, identityName + " has mode 0644"},
		{"a Sphinx key readable by the group is refused", func(t *testing.T, keys string) {
			os.Chmod(filepath.Join(keys, sphinx6), 0o640)
		}, ErrPermissions, sphinx6 + " has mode 0640"},
		{"a key directory open to others is refused", func(t *testing.T, keys string) {
			os.Chmod(keys, 0o755)
		}, ErrPermissions, "keys has mode 0755"},
		{"a missing identity is refused", func(t *testing.T, keys string) {
			os.Remove(filepath.Join(keys, identityName))
		}, ErrNoIdentity, identityName},
		{"a file that is not PEM is refused", rewrite(identityName, func([]byte) []byte {
			return []byte("not a key\n")
		}), ErrCorrupt, "not a PEM key file"},
		{"bad base64 is refused", rewrite(sphinx6, func(b []byte) []byte {
			return bytes.Replace(b, []byte("\n\n"), []byte("\n\n!!!!"), 1)
		}), ErrCorrupt, sphinx6},
		{"a truncated file is refused", rewrite(sphinx6, func(b []byte) []byte {
			return b[:len(b)/2]
		}), ErrCorrupt, sphinx6},
		{"a key of the wrong length is refused", reblock(sphinx6, func(b *pem.Block) {
			b.Bytes = b.Bytes[1:]
		}), ErrCorrupt, "body is 63 bytes, want 64"},
		{"a flipped bit is refused by the checksum", reblock(sphinx6, func(b *pem.Block) {
			b.Bytes[3] ^= 1
		}), ErrCorrupt, "checksum mismatch"},
		{"an unknown format version is refused", reblock(identityName, func(b *pem.Block) {
			b.Headers["Version"] = "2"
		}), ErrCorrupt, "format version \"2\""},
		{"a key moved to another epoch's header is refused", reblock(sphinx6, func(b *pem.Block) {
			b.Headers["Epoch"] = "7"
		}), ErrCorrupt, "checksum mismatch"},
		{"a key file renamed to another epoch is refused", func(t *testing.T, keys string) {
			os.Rename(filepath.Join(keys, sphinx6), filepath.Join(keys, sphinxName(9)))
		}, ErrCorrupt, "holds the key of epoch 6, its name says 9"},
		{"an identity in a Sphinx key's place is refused", func(t *testing.T, keys string) {
			b, _ := os.ReadFile(filepath.Join(keys, identityName))
			os.WriteFile(filepath.Join(keys, sphinx6), b, 0o600)
		}, ErrCorrupt, "want a \"SOTTO SPHINX KEY\""},
		{"trailing data is refused", rewrite(identityName, func(b []byte) []byte {
			return append(b, "extra"...)
		}), ErrCorrupt, "trailing data"},
		{"a key file name without an epoch is refused", func(t *testing.T, keys string) {
			os.WriteFile(filepath.Join(keys, "sphinx-next.key"), nil, 0o600)
		}, ErrCorrupt, "sphinx-next.key"},
		{"a symlinked key is refused", func(t *testing.T, keys string) {
			p := filepath.Join(keys, sphinx6)
			os.Rename(p, p+".real")
			os.Symlink(p+".real", p)
		}, nil, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := initialized(t)
			tt.spoil(t, Dir(dataDir))
			ks, err := Open(dataDir)
			if err == nil {
				t.Fatal("Open accepted the spoiled key store")
			}
			if ks != nil {
				t.Error("Open returned a keystore with its error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Open = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Open = %q, want it to say %q", err, tt.says)
			}
		})
	}
}

func TestOpenReportsEveryBadFileAtOnce(t *testing.T) {
	dataDir := initialized(t)
	keys := Dir(dataDir)
	os.Chmod(filepath.Join(keys, identityName), 0o604)
	os.WriteFile(filepath.Join(keys, sphinxName(6)), []byte("junk"), 0o600)
	_, err := Open(dataDir)
	if !errors.Is(err, ErrPermissions) || !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open = %v, want both a permissions and a corruption error", err)
	}
}

func FuzzDecodeKey(f *testing.F) {
	key := bytes.Repeat([]byte{7}, keyLen)
	f.Add(encodeKey(typeSphinx, 42, key))
	f.Add(encodeKey(typeIdentity, 0, key))
	f.Add([]byte("-----BEGIN SOTTO SPHINX KEY-----\nVersion: 1\nEpoch: x\n\nAAAA\n-----END SOTTO SPHINX KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range []string{typeIdentity, typeSphinx} {
			ep, k, err := decodeKey(typ, data)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("decode error does not wrap ErrCorrupt: %v", err)
				}
				continue
			}
			if len(k) != keyLen {
				t.Fatalf("decoded a %d-byte key", len(k))
			}
			if _, k2, err := decodeKey(typ, encodeKey(typ, ep, k)); err != nil || !bytes.Equal(k, k2) {
				t.Fatalf("re-encoding does not round-trip: %v", err)
			}
		}
	})
}

func TestPKISeedIsStableAndNotTheIdentity(t *testing.T) {
	dir := t.TempDir()
	ks, _, err := Init(dir, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ks.PKIPeerID()
	if err != nil {
		t.Fatal(err)
	}
	own, _ := ks.PeerID()
	ks.Close()
	ks, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	b, _ := ks.PKIPeerID()
	if a != b {
		t.Errorf("PKI peer ID changed across opens: %s, %s", a, b)
	}
	if a == own {
		t.Error("the PKI plugin's peer ID is the node's own")
	}
}
