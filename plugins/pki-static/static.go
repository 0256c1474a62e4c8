// Package pkistatic is the smallest PKI design Sotto ships: an operator
// signs one document per epoch with an Ed25519 key and hands the files out;
// every member is configured with the operator's public key and serves
// what the files say. It proves that interfaces.PKI holds more than one
// design, and runs closed test networks. It trusts the operator entirely:
// there is no gossip, no equivocation (one signer), and nothing new can be
// published.
package pkistatic

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/sottonet/sotto/interfaces"
)

const signatureLabel = "sotto pki static document v1\x00"

// ErrOperatorSignature: a document file is not signed by the configured
// operator key. It wraps interfaces.ErrInvalidArgument.
var ErrOperatorSignature = fmt.Errorf("pki-static: not signed by the operator: %w", interfaces.ErrInvalidArgument)

// SignDocument returns the file an operator hands out for one epoch:
// u32 length || canonical document || Ed25519 signature over a label and
// the document.
func SignDocument(doc *interfaces.Document, operator ed25519.PrivateKey) ([]byte, error) {
	if len(operator) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: operator key of %d bytes", interfaces.ErrInvalidArgument, len(operator))
	}
	enc, err := doc.Encode()
	if err != nil {
		return nil, err
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(len(enc)))
	out = append(out, enc...)
	return append(out, ed25519.Sign(operator, append([]byte(signatureLabel), enc...))...), nil
}

// ParseSignedDocument checks a file against the operator's key and returns
// its document. It never panics on bad input.
func ParseSignedDocument(b []byte, operator ed25519.PublicKey) (*interfaces.Document, error) {
	if len(operator) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: operator key of %d bytes", interfaces.ErrInvalidArgument, len(operator))
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: signed document of %d bytes", interfaces.ErrMalformed, len(b))
	}
	n := binary.BigEndian.Uint32(b)
	if n > interfaces.MaxDocumentSize || uint64(len(b)) != 4+uint64(n)+ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signed document length %d does not fit %d bytes", interfaces.ErrMalformed, n, len(b))
	}
	enc, sig := b[4:4+n], b[4+n:]
	if !ed25519.Verify(operator, append([]byte(signatureLabel), enc...), sig) {
		return nil, ErrOperatorSignature
	}
	return interfaces.ParseDocument(enc)
}

// Config is the plugin's configuration (JSON, see README.md).
type Config struct {
	// OperatorKey is the operator's Ed25519 public key, hex.
	OperatorKey string `json:"operator_key"`
	// Dir holds one signed document per epoch, files named *.sdoc. It is
	// re-read when a document is asked for that is not loaded yet, so an
	// operator can drop in the next epochs' files while members run.
	Dir string `json:"dir"`
	// Network is the network name every document must carry.
	Network string `json:"network"`
}

// ErrConfig: the configuration is unusable.
var ErrConfig = fmt.Errorf("pki-static: invalid config: %w", interfaces.ErrInvalidArgument)

// ParseConfig decodes and validates raw JSON config.
func ParseConfig(raw []byte) (Config, error) {
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return c, c.Validate()
}

// Validate refuses an unusable configuration.
func (c *Config) Validate() error {
	k, err := hex.DecodeString(c.OperatorKey)
	switch {
	case err != nil || len(k) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: operator_key must be 32 bytes of hex", ErrConfig)
	case c.Dir == "":
		return fmt.Errorf("%w: dir is empty", ErrConfig)
	case c.Network == "":
		return fmt.Errorf("%w: network is empty", ErrConfig)
	}
	return nil
}

// PKI serves the operator's documents. It implements interfaces.PKI.
type PKI struct {
	cfg      Config
	operator ed25519.PublicKey

	mu   sync.Mutex
	docs map[uint64]*interfaces.DocumentResponse
	bad  map[string]error // files that failed to load, by name, so each is reported once
}

var _ interfaces.PKI = (*PKI)(nil)

// Open validates cfg and loads the documents in cfg.Dir. Files that fail
// verification are refused (reported by LoadErrors), not served.
func Open(cfg Config) (*PKI, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	k, _ := hex.DecodeString(cfg.OperatorKey)
	p := &PKI{cfg: cfg, operator: k, docs: map[uint64]*interfaces.DocumentResponse{}, bad: map[string]error{}}
	if err := p.reload(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *PKI) reload() error {
	files, err := filepath.Glob(filepath.Join(p.cfg.Dir, "*.sdoc"))
	if err != nil {
		return fmt.Errorf("pki-static: %w", err)
	}
	if _, err := os.Stat(p.cfg.Dir); err != nil {
		return fmt.Errorf("pki-static: document dir: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && len(b) > 4+interfaces.MaxDocumentSize+ed25519.SignatureSize {
			err = fmt.Errorf("%w: file of %d bytes", interfaces.ErrMalformed, len(b))
		}
		var doc *interfaces.Document
		if err == nil {
			doc, err = ParseSignedDocument(b, p.operator)
		}
		if err == nil && doc.Network != p.cfg.Network {
			err = fmt.Errorf("%w: document for network %q", interfaces.ErrInvalidArgument, doc.Network)
		}
		if err != nil {
			p.bad[filepath.Base(f)] = err
			continue
		}
		delete(p.bad, filepath.Base(f))
		h, _ := doc.Hash()
		if old, ok := p.docs[doc.Epoch]; ok && old.Hash != h {
			// The operator signed two documents for one epoch: keep the
			// first, report the file. One signer cannot be excluded, but
			// members must not flip views mid-epoch.
			p.bad[filepath.Base(f)] = fmt.Errorf("pki-static: a second, different document for epoch %d", doc.Epoch)
			continue
		}
		p.docs[doc.Epoch] = &interfaces.DocumentResponse{Document: doc, Hash: h}
	}
	return nil
}

// LoadErrors reports the files that were refused, by file name.
func (p *PKI) LoadErrors() map[string]error {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]error, len(p.bad))
	for k, v := range p.bad {
		out[k] = v
	}
	return out
}

// Publish implements interfaces.PKI. The static design learns nothing from
// nodes: a descriptor byte-identical to one in the operator's document for
// its epoch is accepted (idempotent no-op); any other is refused with an
// error wrapping ErrInvalidArgument.
func (p *PKI) Publish(_ context.Context, req *interfaces.PublishRequest) (*interfaces.PublishResponse, error) {
	if req == nil || req.Descriptor == nil {
		return nil, fmt.Errorf("pki-static: publish: %w: no descriptor", interfaces.ErrInvalidArgument)
	}
	sd, err := interfaces.ParseSignedDescriptor(req.Descriptor.Raw)
	if err != nil {
		return nil, fmt.Errorf("pki-static: publish: %w", err)
	}
	p.mu.Lock()
	r := p.docs[sd.Descriptor.Epoch]
	p.mu.Unlock()
	if r != nil {
		for _, n := range r.Document.Nodes {
			if bytes.Equal(n.Raw, sd.Raw) {
				return &interfaces.PublishResponse{}, nil
			}
		}
	}
	return nil, fmt.Errorf("pki-static: publish: %w: the operator's document for epoch %d does not hold this descriptor",
		interfaces.ErrInvalidArgument, sd.Descriptor.Epoch)
}

// Document implements interfaces.PKI. An epoch with no file yet makes it
// re-read the directory once; still none gives ErrNotFound.
func (p *PKI) Document(_ context.Context, req *interfaces.DocumentRequest) (*interfaces.DocumentResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("pki-static: document: %w: nil request", interfaces.ErrInvalidArgument)
	}
	get := func() *interfaces.DocumentResponse {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.docs[req.Epoch]
	}
	r := get()
	if r == nil {
		if err := p.reload(); err != nil {
			return nil, fmt.Errorf("%w: %w", interfaces.ErrUnavailable, err)
		}
		r = get()
	}
	if r == nil {
		return nil, fmt.Errorf("pki-static: no document for epoch %d: %w", req.Epoch, interfaces.ErrNotFound)
	}
	return r, nil
}

// Evidence implements interfaces.PKI: a single signer leaves nothing to
// report about nodes, so the list is always empty.
func (p *PKI) Evidence(_ context.Context, req *interfaces.EvidenceRequest) (*interfaces.EvidenceResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("pki-static: evidence: %w: nil request", interfaces.ErrInvalidArgument)
	}
	return &interfaces.EvidenceResponse{}, nil
}
