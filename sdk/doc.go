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
// # Messaging and key-value
//
// A pod's guest, command or handler module, talks to the other pods of its
// namespace over the cluster's bus and keeps state in its namespace's
// key-value store:
//
//	sdk.Publish("orders.new", data)                       // to every subscriber
//	reply, err := sdk.Request(ctx, "prices.get", data)    // the first answer, until ctx's deadline
//	sub, err := sdk.Subscribe("orders.>")                 // "*" one token, ">" the rest
//	m, err := sub.Next(ctx)                               // then m.Respond(answer) to a request
//	sub, err := sdk.QueueSubscribe("orders.new", "workers") // replicas share the messages
//
//	kv := sdk.KV()
//	e, err := kv.Get("hits")                              // ErrNotFound when absent
//	rev, err := kv.Create("hits", []byte("1"))            // ErrExists when present
//	rev, err = kv.Update("hits", []byte("2"), e.Revision) // ErrExists when someone wrote first: retry
//	w, err := kv.Watch("hits")                            // changes from now on: Watch, then Get
//
// Subjects and keys are the namespace's own: the host places them under
// the pod's namespace, so pods of another namespace using the same names
// neither see nor answer them. Subjects are dot-separated tokens of
// printable ASCII; keys letters, digits and "-/_=." (package abi has the
// rules and limits: 1 MiB messages, 512 KiB values). Requests are answered
// by a subscriber's Respond. Where the host offers no such services
// (runtime/wasm embedded without a runtime.AppServices) every call fails
// with ErrUnavailable, as does a request nobody subscribes to.
//
// Waiting (Request, Subscription.Next, Watcher.Next) blocks the whole
// program, which has one thread under wasip1: Next waits in 50 ms slices
// and lets other goroutines run between them, Request blocks for its
// round trip. Messages a subscription receives wait in the host, bounded;
// the oldest are dropped when the program does not keep up
// (Message.Dropped says how many).
//
// # Environment
//
// A pod's env and envFrom arrive as the environment, its volumes as
// pre-opened directories at their mount paths, and HOSTNAME is the pod name
// (WASI has no hostname call).
package sdk
