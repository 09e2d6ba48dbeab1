// Command netserve is a test guest for runtime/wasm: a net/http server on
// the first pre-opened listener, with many goroutines, as a Go program serves
// natively.
//
//	/            "hello <path>"
//	/big?n=N     N bytes of 'x' (more than a socket buffer holds, so writes
//	             wait for the client)
//	/wait?ms=N   answers after N ms, holding its connection
//	/block       answers once /release was requested: proves that requests
//	             are served concurrently without any timing
//	/release     releases /block
//	/exit        exits with code 3
//
// It serves every pre-opened listener and prints how many there are.
package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/skiffhq/skiff/sdk"
)

func main() {
	lns, err := sdk.Listeners()
	if err != nil || len(lns) == 0 {
		fmt.Fprintln(os.Stderr, "listeners:", len(lns), err)
		os.Exit(1)
	}
	released := make(chan struct{})
	var once sync.Once
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Write(bytes.Repeat([]byte("x"), n))
	})
	mux.HandleFunc("/wait", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprintf(w, "waited %dms", ms)
	})
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		<-released
		fmt.Fprint(w, "released")
	})
	mux.HandleFunc("/release", func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(released) })
		fmt.Fprint(w, "releasing")
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		os.Exit(3)
	})
	fmt.Printf("serving %d listeners\n", len(lns))
	for _, ln := range lns[1:] {
		go serve(ln, mux)
	}
	serve(lns[0], mux)
}

func serve(ln net.Listener, h http.Handler) {
	err := http.Serve(ln, h)
	fmt.Fprintln(os.Stderr, "serve:", err)
	os.Exit(1)
}
