// Command portable is a test guest for runtime/wasm: a server written the
// way modules built for other WASI runtimes find their listeners, without
// skiff's SDK. argv[1] picks the way:
//
//	scan       tries net.FileListener on fds 3..63 and serves on the first
//	           listener found (wazero's -listen, wasmtime's --tcplisten)
//	listenfds  serves on fd 3 .. 3+$LISTEN_FDS-1, as wasmtime's --listenfd
//	           and systemd socket activation put them
//	never      never touches its listener and sleeps
//
// Each server answers "<mode> fd <n> <file>" where file is the content of
// $FILE if set (to show the volumes were found too).
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"
)

func main() {
	switch os.Args[1] {
	case "never":
		fmt.Println("not serving")
		time.Sleep(time.Hour)
		return
	case "scan":
		for fd := 3; fd < 64; fd++ {
			if ln := listener(fd); ln != nil {
				serve("scan", fd, ln)
			}
		}
		fmt.Fprintln(os.Stderr, "no listener among fds 3..63")
		os.Exit(1)
	case "listenfds":
		n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "LISTEN_FDS:", os.Getenv("LISTEN_FDS"))
			os.Exit(1)
		}
		ln := listener(3)
		if ln == nil {
			fmt.Fprintln(os.Stderr, "fd 3 is not a listener")
			os.Exit(1)
		}
		serve("listenfds", 3, ln)
	case "x":
		b, err := os.ReadFile(os.Getenv("FILE"))
		fmt.Println(string(b), err)
		return
	}
	os.Exit(2)
}

// listener returns fd as a net.Listener, or nil if it is not one.
func listener(fd int) net.Listener {
	if err := syscall.SetNonblock(fd, true); err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), "fd")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil
	}
	return ln
}

func serve(mode string, fd int, ln net.Listener) {
	file := ""
	if name := os.Getenv("FILE"); name != "" {
		b, err := os.ReadFile(name)
		if err != nil {
			file = "error: " + err.Error()
		} else {
			file = string(b)
		}
	}
	fmt.Printf("serving %s on fd %d\n", mode, fd)
	err := http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s fd %d %s", mode, fd, file)
	}))
	fmt.Fprintln(os.Stderr, "serve:", err)
	os.Exit(1)
}
