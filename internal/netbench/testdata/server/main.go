// Command server is netbench's HTTP server: it answers every request with
// the same small body. The same code is built for a Wasm pod (wasip1: the
// pod's first container port, sdk.Listener(0)) and natively (a TCP address
// from its first argument, default 127.0.0.1:0); only listen_*.go differ.
// It prints "listening on ADDR" once it accepts connections.
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

// body is what every request gets.
var body = []byte("hello from netbench\n")

func main() {
	ln, err := listen(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
	fmt.Println("listening on", ln.Addr())
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	err = srv.Serve(ln)
	fmt.Fprintln(os.Stderr, "server:", err)
	os.Exit(1)
}
