//go:build !amd64 || purego

package aesctr

const useAESNI = false

func expandKey256(key *[32]byte, xk *[240]byte)      { panic("aesctr: no AES-NI") }
func encryptBlock(xk *[240]byte, dst, src *[16]byte) { panic("aesctr: no AES-NI") }
