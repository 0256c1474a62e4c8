package config

import (
	"fmt"
	"os"
)

// checkConfigFile refuses a config file that users other than its owner
// may write: whoever can write a node's config chooses the plugin binaries
// it executes (plugins.*.path) and the addresses it trusts, so such a file
// is a way in for any local user.
func checkConfigFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if m := fi.Mode().Perm(); m&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by its group or by everyone (mode %#o): it names the binaries the node runs; chmod go-w %s",
			ErrInvalid, path, m, path)
	}
	return nil
}
