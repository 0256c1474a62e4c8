package main

import (
	"runtime/debug"
	"strings"
)

// version is set at build time for releases:
// go build -ldflags "-X main.version=v1.2.3" ./cmd/sotto
var version string

// buildVersion is what `sotto --version` prints: the release version, or
// else the module version and VCS revision Go recorded in the binary.
func buildVersion() string {
	v := version
	info, ok := debug.ReadBuildInfo()
	if !ok {
		if v == "" {
			return "unknown"
		}
		return v
	}
	if v == "" {
		v = info.Main.Version
	}
	var rev, modified, when string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		case "vcs.time":
			when = s.Value
		}
	}
	parts := []string{v}
	if rev != "" {
		parts = append(parts, "commit "+rev[:min(12, len(rev))]+modified)
	}
	if when != "" {
		parts = append(parts, when)
	}
	parts = append(parts, info.GoVersion)
	return strings.Join(parts, ", ")
}
