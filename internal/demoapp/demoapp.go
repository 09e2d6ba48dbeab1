// Package demoapp is the small web application that examples/httpserver
// (a WASI command serving its container port) and examples/handler (an SDK
// handler module) both serve, so the two ways of running HTTP in skiff can be
// compared on the same code.
package demoapp

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
)

// DefaultSecretFile is read when SECRET_FILE is not set: a file of a Secret
// volume mounted at /etc/secret.
const DefaultSecretFile = "/etc/secret/message"

// New returns the application's handler, logging each request to log (the
// pod's stdout in a module). crash is called for /crash and
// must not return (the command exits; the handler module's instance dies).
//
//	/         $GREETING, the pod's name ($HOSTNAME) and the secret file's
//	          content if it is mounted
//	/healthz  200 "ok", or 500 "failing" once /fail was requested: a
//	          liveness probe target that can be made to fail
//	/fail     makes /healthz fail from now on
//	/crash    exits with a non-zero code
func New(log io.Writer, crash func()) http.Handler {
	var failing atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		greeting := os.Getenv("GREETING")
		if greeting == "" {
			greeting = "hello"
		}
		fmt.Fprintf(w, "%s from %s\n", greeting, os.Getenv("HOSTNAME"))
		file := os.Getenv("SECRET_FILE")
		if file == "" {
			file = DefaultSecretFile
		}
		if b, err := os.ReadFile(file); err == nil {
			fmt.Fprintf(w, "secret: %s\n", strings.TrimSpace(string(b)))
		}
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "failing", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		failing.Store(true)
		fmt.Fprintln(w, "/healthz fails from now on")
	})
	mux.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(log, "crashing on request")
		crash()
	})
	return logRequests(log, mux)
}

// logRequests writes one line per request to stdout: the pod's log.
func logRequests(log io.Writer, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(log, "%s %s\n", r.Method, r.URL.RequestURI())
		h.ServeHTTP(w, r)
	})
}
