//go:build !linux

package agent

import "errors"

// statfs is not read here: the node reports no disk pressure.
func statfs(string) (diskStats, error) {
	return diskStats{}, errors.New("statfs of the data directory: not supported on this platform")
}
