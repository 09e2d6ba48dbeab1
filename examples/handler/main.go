//go:build wasip1

// Command handler is the application of examples/httpserver written as an
// SDK handler module: skiff owns the listener and calls the module once per
// request, on a pool of instances. It has no main loop; the handler is
// registered in init, which the reactor's `_initialize` runs.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o handler.wasm ./examples/handler
//
// /fail is per instance: with more than one instance in the pool, only the
// instance that served it fails /healthz. /crash ends that instance; skiff
// answers 500 and starts another.
package main

import (
	"os"

	"github.com/skiffhq/skiff/internal/demoapp"
	"github.com/skiffhq/skiff/sdk"
)

func init() {
	sdk.Handle(demoapp.New(os.Stdout, func() { os.Exit(1) }))
}

func main() {}
