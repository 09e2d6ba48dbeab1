// Command handler is a test guest for runtime/wasm: an SDK handler module
// (build it with -buildmode=c-shared). It serves handlerapp, plus routes that
// misbehave on purpose:
//
//	/count          how many requests this instance served, itself included
//	/env            $GREETING and the content of /config/message.txt
//	/panic          panics (the SDK answers 500; the instance lives on)
//	/exit           exits with code 3 (the instance is gone)
//	/oom            allocates until its memory limit stops it
//	/waitfile?f=N   answers once /work/N exists (polling, at most 60 s):
//	                holds the instance until the test says so
//	/spin?ms=N      keeps its CPU busy for N ms of wall time (at most 10 s)
//	/fetch?url=U    GETs U with sdk.HTTPClient and answers "<status> <body>"
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/skiffhq/skiff/runtime/wasm/testdata/handlerapp"
	"github.com/skiffhq/skiff/sdk"
)

var served int

var keep [][]byte

func init() {
	app := handlerapp.New()
	mux := http.NewServeMux()
	mux.Handle("/", app)
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, served)
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile("/config/message.txt")
		fmt.Fprintf(w, "GREETING=%s message=%s err=%v", os.Getenv("GREETING"), b, err)
	})
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		c := sdk.HTTPClient()
		c.Timeout = 10 * time.Second
		resp, err := c.Get(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		fmt.Fprintf(w, "%d %s", resp.StatusCode, b)
	})
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) {
		panic("on purpose")
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		os.Exit(3)
	})
	mux.HandleFunc("/oom", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; ; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = byte(i)
			}
			keep = append(keep, b)
		}
	})
	mux.HandleFunc("/waitfile", func(w http.ResponseWriter, r *http.Request) {
		name := "/work/" + r.URL.Query().Get("f")
		for range 6000 {
			if _, err := os.Stat(name); err == nil {
				fmt.Fprint(w, "found")
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		http.Error(w, "never came", http.StatusGatewayTimeout)
	})
	mux.HandleFunc("/spin", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		end := time.Now().Add(time.Duration(min(ms, 10000)) * time.Millisecond)
		n := 0
		for time.Now().Before(end) {
			n++
		}
		fmt.Fprint(w, n)
	})
	sdk.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		served++
		mux.ServeHTTP(w, r)
	})
}

func main() {}
