//go:build !unix

package dirlock

import (
	"errors"
	"os"
)

// Without flock the lock is advisory only in name: nothing stops a second
// process. skiff's nodes run on Linux; this keeps the library building
// elsewhere.
var errWouldBlock = errors.New("would block")

func lockFile(*os.File) error { return nil }
func unlockFile(*os.File)     {}
