// Package sdk is the guest SDK for skiff's Wasm workloads, for Go programs
// built with GOOS=wasip1 GOARCH=wasm. On other platforms the package is empty
// (this documentation and package abi only), so a module that imports it
// still builds and vets everywhere.
//
// # HTTP handler modules
//
// A handler module registers an http.Handler and is built as a WASI reactor:
//
//	func init() { sdk.Handle(myHandler) }
//	func main() {}
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o app.wasm .
//
// The host (runtime/wasm's Handler) owns the listener, keeps a pool of
// instances and calls the module once per request; an instance serves one
// request at a time. With -buildmode=c-shared the Go runtime exports
// `_initialize`, which runs package initialisation (so init must call
// Handle) but never main. The request body arrives whole and the response is
// buffered and sent when the handler returns: streaming, Hijack and Push are
// not available. A handler that panics gets a 500 and the instance lives on,
// as net/http does; one that exits or traps loses its instance. The exports
// and the encoding are the ABI of package abi.
//
// # Commands serving TCP
//
// A command (the default build mode) gets the pod's container ports as
// pre-opened listeners: Listener(0) is the first port. net/http's Serve works
// on them, with any number of goroutines, because skiff's host polls the
// sockets for real (see runtime/wasm's Listener):
//
//	ln, err := sdk.Listener(0)
//	...
//	http.Serve(ln, mux)
//
// or, for every port at once, sdk.Serve(mux).
//
// # Environment
//
// A pod's env and envFrom arrive as the environment, its volumes as
// pre-opened directories at their mount paths, and HOSTNAME is the pod name
// (WASI has no hostname call).
package sdk
