// Package atomicfile writes small files so that a crash never leaves a
// half-written one that the next start would take for the real thing.
package atomicfile

import (
	"fmt"
	"os"
)

// Write writes data to path with mode 0600 (these files hold keys, tokens
// and credentials): into path+".tmp", synced, then renamed over path.
func Write(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
