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
	"net/http"
	"os"

	"github.com/skiffhq/skiff/examples/internal/demoapp"
	"github.com/skiffhq/skiff/sdk"
)

func main() {
	ln, err := sdk.Listener(0) // the first containerPort
	if err != nil {
		fmt.Fprintln(os.Stderr, "no listener:", err)
		os.Exit(1)
	}
	fmt.Println("serving on the first container port")
	err = http.Serve(ln, demoapp.New(func() { os.Exit(1) }))
	fmt.Fprintln(os.Stderr, "serve:", err)
	os.Exit(1)
}
