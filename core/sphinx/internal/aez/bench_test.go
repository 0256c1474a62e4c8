package aez

import (
	"crypto/ecdh"
	"fmt"
	"slices"
	"testing"
	"time"
)

// The AES round implementations the benchmarks compare: AES-NI (amd64 only), the
// bitsliced rounds every other build runs, and the former table rounds (test only).
var benchPaths = []string{"asm", "bitsliced", "table"}

// onPath runs f with the AES rounds of path for c, or skips b if this build lacks
// them.
func onPath(b *testing.B, c *Cipher, path string, f func()) {
	savedAsm, savedRef := useAsm, refRounds
	defer func() { useAsm, refRounds = savedAsm, savedRef }()
	switch path {
	case "asm":
		if !useAsm {
			b.Skip("no AES-NI assembly on this platform or build")
		}
	case "bitsliced":
		useAsm = false
	case "table":
		useAsm, refRounds = false, tableRounds(&c.keys)
	}
	f()
}

func benchEncipher(b *testing.B, n int, path string) {
	c, nonce := testCipher(1)
	onPath(b, c, path, func() {
		buf := make([]byte, n)
		b.SetBytes(int64(n))
		b.ReportAllocs()
		for b.Loop() {
			c.Encipher(buf, buf, nonce)
		}
	})
}

// sphinxBody is the payload AEZ enciphers at each hop of the default geometry.
const sphinxBody = 2654

// BenchmarkPayload is AEZ over one Sphinx payload on each path, with one X25519
// (crypto/ecdh, the unit of docs/BENCHMARKS.md) in the same run, so that the ratios
// hold across machines and under js/wasm:
//
//	go test -run '^$' -bench Payload ./core/sphinx/internal/aez/
func BenchmarkPayload(b *testing.B) {
	for _, path := range benchPaths {
		b.Run("AEZ/"+path, func(b *testing.B) { benchEncipher(b, sphinxBody, path) })
	}
	b.Run("X25519", func(b *testing.B) {
		x := x25519Bench(b)
		b.ReportAllocs()
		for b.Loop() {
			x()
		}
	})
}

// x25519Bench returns one X25519 (crypto/ecdh, the unit of docs/BENCHMARKS.md).
func x25519Bench(b *testing.B) func() {
	priv, err := ecdh.X25519().NewPrivateKey(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	peer, err := ecdh.X25519().NewPrivateKey(append(make([]byte, 31), 1))
	if err != nil {
		b.Fatal(err)
	}
	pub := peer.PublicKey()
	return func() {
		if _, err := priv.ECDH(pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPayloadInterleaved times what BenchmarkPayload times, but one call of
// each in turn within every iteration, and compares the medians of the calls' times,
// so that the load of a shared machine (bursts, other builds) falls on all of them
// alike. It reports each one's median (ns/name) and the ratios docs/BENCHMARKS.md
// quotes: each AEZ path over one X25519, and bitsliced over table.
func BenchmarkPayloadInterleaved(b *testing.B) {
	savedAsm, savedRef := useAsm, refRounds
	defer func() { useAsm, refRounds = savedAsm, savedRef }()
	c, nonce := testCipher(1)
	buf := make([]byte, sphinxBody)
	aez := func(asm bool, ref func(block, int) block) func() {
		return func() {
			useAsm, refRounds = asm, ref
			c.Encipher(buf, buf, nonce)
		}
	}
	type run struct {
		name string
		f    func()
		d    []time.Duration
	}
	runs := []*run{{name: "X25519", f: x25519Bench(b)}, {name: "bitsliced", f: aez(false, nil)}, {name: "table", f: aez(false, tableRounds(&c.keys))}}
	if savedAsm {
		runs = append(runs, &run{name: "asm", f: aez(true, nil)})
	}
	for b.Loop() {
		for _, r := range runs {
			t0 := time.Now()
			r.f()
			r.d = append(r.d, time.Since(t0))
		}
	}
	med := make(map[string]float64)
	for _, r := range runs {
		slices.Sort(r.d)
		med[r.name] = float64(r.d[len(r.d)/2].Nanoseconds())
		b.ReportMetric(med[r.name], "ns/"+r.name)
		if r.name != "X25519" {
			b.ReportMetric(med[r.name]/med["X25519"], r.name+"/X25519")
		}
	}
	b.ReportMetric(med["bitsliced"]/med["table"], "bitsliced/table")
	b.ReportMetric(0, "ns/op") // the sum of all the runs: not a figure anyone quotes
}

// BenchmarkAES4 is one AES4 call: per block on each path, and the bitsliced rounds
// on four blocks at once as AEZ-core's passes run them (ns/op is per call).
func BenchmarkAES4(b *testing.B) {
	c, _ := testCipher(2)
	b.Run("asm", func(b *testing.B) {
		if !useAsm {
			b.Skip("no AES-NI assembly on this platform or build")
		}
		var x, z block
		for b.Loop() {
			aes4Asm(&x, &z, &z, &z, &c.keys)
		}
	})
	b.Run("bitsliced/1", func(b *testing.B) {
		var xs [4]block
		for b.Loop() {
			c.aes4Bitsliced(&xs)
		}
	})
	b.Run("bitsliced/4", func(b *testing.B) {
		var xs [4]block
		for b.Loop() {
			c.aes4Bitsliced(&xs)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(4*b.N), "ns/block")
	})
	b.Run("table", func(b *testing.B) {
		var x block
		rk := tableKeys(&c.keys)
		for b.Loop() {
			aes4Table(&rk, &x)
		}
	})
}

func BenchmarkEncipher2KiB(b *testing.B) {
	for _, path := range benchPaths {
		b.Run(path, func(b *testing.B) { benchEncipher(b, 2048, path) })
	}
}

func BenchmarkEncipher(b *testing.B) {
	for _, n := range []int{16, 135, 709, 2048, 4096} {
		for _, path := range benchPaths {
			b.Run(fmt.Sprintf("%d/%s", n, path), func(b *testing.B) { benchEncipher(b, n, path) })
		}
	}
}

// BenchmarkSetKey is the key setup per packet: the bitsliced path also slices I, J, L.
func BenchmarkSetKey(b *testing.B) {
	for _, path := range benchPaths[:2] {
		b.Run(path, func(b *testing.B) {
			var c Cipher
			onPath(b, &c, path, func() {
				var key [KeySize]byte
				b.ReportAllocs()
				for b.Loop() {
					c.SetKey(&key)
				}
			})
		})
	}
}
