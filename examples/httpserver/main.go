//go:build wasip1

// Command httpserver is a Wasm workload that serves HTTP on its container
// port like a container would: skiff opens the port on the pod's IP and hands
// the listening socket to the module (a pre-opened listener), and net/http
// serves it with as many goroutines as it likes. See internal/demoapp for
// the routes.
//
//	GOOS=wasip1 GOARCH=wasm go build -o httpserver.wasm ./examples/httpserver
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/skiffhq/skiff/internal/demoapp"
	"github.com/skiffhq/skiff/sdk"
)

func main() {
	// With arguments it is a tool, for `kubectl exec POD -- httpserver cat
	// FILE` and exec probes: exec runs a new instance of the pod's module
	// with the given argv, in the pod's environment and volumes.
	if len(os.Args) > 1 {
		os.Exit(tool(os.Args[1:]))
	}
	fmt.Println("serving on the container ports")
	// sdk.Serve is net/http's Serve on every pre-opened listener;
	// sdk.Listener(i) gives the i-th port's net.Listener to do it by hand.
	err := sdk.Serve(demoapp.New(os.Stdout, func() { os.Exit(1) }))
	fmt.Fprintln(os.Stderr, "serve:", err)
	os.Exit(1)
}

// tool runs one of the commands exec may ask for: env (print the
// environment), cat FILE... (print files; "-" is standard input), tty (say
// whether standard input is a terminal).
func tool(args []string) int {
	switch args[0] {
	case "env":
		fmt.Println(strings.Join(os.Environ(), "\n"))
		return 0
	case "tty":
		// What `kubectl exec -it` gives: a terminal where the node can make one.
		if st, err := os.Stdin.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Println("stdin is a terminal")
		} else {
			fmt.Println("stdin is not a terminal")
		}
		return 0
	case "cat":
		code := 0
		for _, name := range args[1:] {
			if name == "-" { // standard input: `kubectl exec -i`
				io.Copy(os.Stdout, os.Stdin)
				continue
			}
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, "cat:", err)
				code = 1
				continue
			}
			io.Copy(os.Stdout, f)
			f.Close()
		}
		return code
	}
	fmt.Fprintf(os.Stderr, "usage: httpserver [env | cat FILE|-... | tty] (no arguments: serve)\n")
	return 2
}
