//go:build !(linux || darwin || freebsd)

package storagebadger

func freeBytes(string) (uint64, error) { return 0, errNoStatfs }
