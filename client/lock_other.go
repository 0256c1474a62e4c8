//go:build !unix

package client

import "os"

// Without flock (js/wasm, Windows) the file store takes no lock: two
// processes on one state are not detected there.
func lockFile(*os.File) error   { return nil }
func unlockFile(*os.File) error { return nil }
