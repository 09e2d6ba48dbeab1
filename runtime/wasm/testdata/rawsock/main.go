// Command rawsock is a test guest for runtime/wasm: it uses the pre-opened
// listener through raw WASI calls in blocking mode, as a guest written in C
// or Rust would, instead of Go's network poller. For each connection it reads
// one chunk, writes it back upper-cased, shuts down writing and closes;
// argv[1] is how many connections to serve before exiting 0.
package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	// The listener's descriptor, as the host announces it (sdk/abi).
	ln, err := strconv.Atoi(os.Getenv("LISTEN_FDS_FIRST_FD"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "LISTEN_FDS_FIRST_FD:", err)
		os.Exit(1)
	}
	fmt.Println("accepting")
	for range n {
		fd, _, err := syscall.Accept(ln)
		if err != nil {
			fmt.Fprintln(os.Stderr, "accept:", err)
			os.Exit(1)
		}
		buf := make([]byte, 4096)
		m, err := syscall.Read(fd, buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "read:", err)
			os.Exit(1)
		}
		if _, err := syscall.Write(fd, bytes.ToUpper(buf[:m])); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(1)
		}
		if err := syscall.Shutdown(fd, syscall.SHUT_WR); err != nil {
			fmt.Fprintln(os.Stderr, "shutdown:", err)
			os.Exit(1)
		}
		if err := syscall.Close(fd); err != nil {
			fmt.Fprintln(os.Stderr, "close:", err)
			os.Exit(1)
		}
	}
}
