// Command printenv is a test guest for runtime/wasm: it prints what a
// container sees (argv, environment, a mounted file) and probes what it must
// not see (host files outside its mounts).
//
// argv[1] selects an extra action:
//
//	write: create /config/new.txt; exit 3 if that worked, 4 if it failed
//	stdin: copy stdin to stdout
//	symlink: try to link out of /config, and to a file inside it
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

func main() {
	fmt.Printf("args=%q\n", os.Args)
	fmt.Printf("environ=%q\n", os.Environ())
	fmt.Printf("GREETING=%s\n", os.Getenv("GREETING"))
	fmt.Printf("HOSTNAME=%s\n", os.Getenv("HOSTNAME"))
	if b, err := os.ReadFile("/config/message.txt"); err != nil {
		fmt.Printf("message error: %v\n", err)
	} else {
		fmt.Printf("message=%s\n", b)
	}
	// Host files outside the mounts must not be reachable, also not by
	// climbing out of a mount.
	for _, p := range []string{"/etc/hostname", "/config/../etc/hostname", "../etc/hostname"} {
		if _, err := os.ReadFile(p); err != nil {
			fmt.Printf("%s: not visible\n", p)
		} else {
			fmt.Printf("%s: VISIBLE\n", p)
		}
	}
	fmt.Fprintln(os.Stderr, "to stderr")

	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "write":
			if err := os.WriteFile("/config/new.txt", []byte("written by the guest\n"), 0o644); err != nil {
				fmt.Fprintf(os.Stderr, "write failed (EROFS=%t): %v\n", errors.Is(err, syscall.EROFS), err)
				os.Exit(4)
			}
			os.Exit(3)
		case "symlink":
			// A relative link climbing out of the mount must not be made.
			err := os.Symlink("../../../../../../../../etc/hostname", "/config/escape")
			fmt.Printf("symlink escape: %v\n", err)
			if b, err := os.ReadFile("/config/escape"); err == nil {
				fmt.Printf("escape read %d bytes: ESCAPED\n", len(b))
			}
			// A link pointing down from its directory is fine.
			err = os.Symlink("message.txt", "/config/alias")
			b, rerr := os.ReadFile("/config/alias")
			fmt.Printf("symlink alias: %v, read %q %v\n", err, b, rerr)
		case "stdin":
			if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
				fmt.Fprintf(os.Stderr, "stdin: %v\n", err)
				os.Exit(1)
			}
		}
	}
}
