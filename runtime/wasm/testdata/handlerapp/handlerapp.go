// Package handlerapp is the HTTP handler runtime/wasm's tests and benchmark
// serve twice: compiled into the handler test guest (served by the Wasm
// Handler) and compiled natively (served by net/http), so the two are
// compared on the same code.
package handlerapp

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

// New returns the handler:
//
//	/        "hello <path> from <$HOSTNAME>"
//	/echo    the method, the X-Echo header and the body, as text; status
//	         from ?status=
func New() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s from %s", r.URL.Path, os.Getenv("HOSTNAME"))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Add("X-Reply", "a")
		w.Header().Add("X-Reply", "b")
		status := http.StatusOK
		if s := r.URL.Query().Get("status"); s != "" {
			fmt.Sscan(s, &status)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, "%s %s %s host=%s\n%s", r.Method, r.URL.RequestURI(), r.Header.Get("X-Echo"), r.Host, body)
	})
	return mux
}
