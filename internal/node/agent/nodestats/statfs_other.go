//go:build !linux

package nodestats

import "errors"

// Statfs is not read here: the node reports no disk pressure.
func Statfs(string) (Disk, error) {
	return Disk{}, errors.New("Statfs of the data directory: not supported on this platform")
}
