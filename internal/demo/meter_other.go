//go:build !linux

package demo

import "time"

// threadCPU is measured on Linux only.
func threadCPU() (time.Duration, bool) { return 0, false }

// processCPU is measured on Linux only.
func processCPU() (time.Duration, bool) { return 0, false }
