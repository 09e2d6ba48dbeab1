//go:build !linux

package storebench

import "errors"

// writeBytes needs Linux's /proc/self/io; elsewhere bytes per write are not
// measured.
func writeBytes() (int64, error) {
	return 0, errors.New("I/O counters need Linux /proc/self/io")
}

// syncFS does nothing where syncfs(2) is missing: the counters it would
// settle are not read there either.
func syncFS(string) error { return nil }

func fsType(string) (name string, inMemory bool) { return "unknown", false }

func kernelRelease() string { return "unknown" }
