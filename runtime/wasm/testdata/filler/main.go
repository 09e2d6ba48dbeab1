// Command filler is a test guest for disk quotas: it writes a file in 1 MiB
// chunks until it has written what it was asked (never more than 64 MiB,
// whatever it is asked: a test must bound what it writes, even on a runtime
// whose quota is broken) or a write fails, and says where it stopped.
//
//	filler DIR MIB
//
// It prints "wrote N bytes" when it wrote everything, or "stopped at N
// bytes: ERROR" (with "(ENOSPC)" when the error is ENOSPC), and exits 0
// either way, so that a test reads the outcome from the log; it exits 2 on
// bad arguments or when it cannot create the file.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

const (
	chunk  = 1 << 20
	maxMiB = 64
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: filler DIR MIB")
		os.Exit(2)
	}
	mib, err := strconv.Atoi(os.Args[2])
	if err != nil || mib < 0 {
		fmt.Fprintln(os.Stderr, "filler: bad size", os.Args[2])
		os.Exit(2)
	}
	mib = min(mib, maxMiB)
	f, err := os.Create(filepath.Join(os.Args[1], "fill"))
	if err != nil {
		fmt.Println("create:", err)
		os.Exit(2)
	}
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i)
	}
	var written int64
	for range mib {
		n, err := f.Write(buf)
		written += int64(n)
		if err != nil {
			tag := ""
			if errors.Is(err, syscall.ENOSPC) {
				tag = " (ENOSPC)"
			}
			fmt.Printf("stopped at %d bytes: %v%s\n", written, err, tag)
			f.Close()
			return
		}
	}
	if err := f.Close(); err != nil {
		fmt.Printf("stopped at %d bytes: close: %v\n", written, err)
		return
	}
	fmt.Printf("wrote %d bytes\n", written)
}
