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
	"os"

	"github.com/skiffhq/skiff/examples/internal/demoapp"
	"github.com/skiffhq/skiff/sdk"
)

func main() {
	fmt.Println("serving on the container ports")
	// sdk.Serve is net/http's Serve on every pre-opened listener;
	// sdk.Listener(i) gives the i-th port's net.Listener to do it by hand.
	err := sdk.Serve(demoapp.New(func() { os.Exit(1) }))
	fmt.Fprintln(os.Stderr, "serve:", err)
	os.Exit(1)
}
