//go:build amd64 && !purego

package aesctr

import "golang.org/x/sys/cpu"

var useAESNI = cpu.X86.HasAES && cpu.X86.HasSSE41

//go:noescape
func expandKey256(key *[32]byte, xk *[240]byte)

//go:noescape
func encryptBlock(xk *[240]byte, dst, src *[16]byte)
