//go:build wasip1

package sdk

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"unsafe"

	"github.com/skiffhq/skiff/sdk/abi"
)

// handler is what Handle registered; nil answers 404 to every request.
var handler http.Handler

// Handle registers h as the module's HTTP handler. Call it from an init
// function: in a reactor (-buildmode=c-shared) main never runs.
func Handle(h http.Handler) { handler = h }

// HandleFunc registers f as the module's HTTP handler.
func HandleFunc(f func(http.ResponseWriter, *http.Request)) { Handle(http.HandlerFunc(f)) }

// The buffers the ABI hands across. They live in package variables so the
// garbage collector keeps them while the host reads or writes them, and are
// reused while they are big enough.
var (
	reqBuf  []byte
	respBuf []byte
)

//go:wasmexport skiff_abi_version
func abiVersion() uint32 { return abi.Version }

//go:wasmexport skiff_http_alloc
func httpAlloc(size uint32) unsafe.Pointer {
	if uint32(cap(reqBuf)) < size || cap(reqBuf) == 0 {
		reqBuf = make([]byte, max(size, 1))
	}
	return unsafe.Pointer(unsafe.SliceData(reqBuf))
}

//go:wasmexport skiff_http_handle
func httpHandle(ptr unsafe.Pointer, size uint32) uint64 {
	if cap(reqBuf) == 0 || ptr != unsafe.Pointer(unsafe.SliceData(reqBuf)) || size > uint32(cap(reqBuf)) {
		fmt.Fprintln(os.Stderr, "sdk: skiff_http_handle called with a buffer skiff_http_alloc did not return")
		return 0
	}
	ar, err := abi.DecodeRequest(reqBuf[:size])
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdk:", err)
		return 0
	}
	resp := serve(ar)
	respBuf = abi.AppendResponse(respBuf[:0], resp)
	if len(respBuf) == 0 {
		return 0
	}
	p := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(respBuf))))
	return p<<32 | uint64(len(respBuf))
}

// serve runs the handler on one decoded request.
func serve(ar *abi.Request) *abi.Response {
	w := &responseWriter{header: make(http.Header)}
	req, err := newRequest(ar)
	if err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return w.response()
	}
	h := handler
	if h == nil {
		h = http.NotFoundHandler()
	}
	func() {
		// As net/http does: a panicking handler fails its request, not
		// the program.
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					fmt.Fprintf(os.Stderr, "sdk: panic serving %s %s: %v\n%s", ar.Method, ar.RequestURI, v, debug.Stack())
				}
				w.reset()
				http.Error(w, "Internal Server Error", http.StatusInternalServerError)
			}
		}()
		h.ServeHTTP(w, req)
	}()
	return w.response()
}

func newRequest(ar *abi.Request) (*http.Request, error) {
	u, err := url.ParseRequestURI(ar.RequestURI)
	if err != nil {
		return nil, err
	}
	req := &http.Request{
		Method:        ar.Method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        ar.Header,
		Body:          io.NopCloser(bytes.NewReader(ar.Body)),
		ContentLength: int64(len(ar.Body)),
		Host:          ar.Host,
		RemoteAddr:    ar.RemoteAddr,
		RequestURI:    ar.RequestURI,
	}
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	if len(ar.Body) == 0 {
		req.Body = http.NoBody
	}
	return req, nil
}

// responseWriter buffers a response.
type responseWriter struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	// 1xx informational responses are not forwarded; the final status is
	// what counts.
	if code < 200 {
		return
	}
	w.wroteHeader = true
	w.status = code
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.body.Write(p)
}

// Flush implements http.Flusher; the response goes out when the handler
// returns anyway.
func (w *responseWriter) Flush() {}

func (w *responseWriter) reset() {
	w.header = make(http.Header)
	w.wroteHeader = false
	w.status = 0
	w.body.Reset()
}

func (w *responseWriter) response() *abi.Response {
	if !w.wroteHeader {
		w.status = http.StatusOK
	}
	body := w.body.Bytes()
	// As net/http: sniff a Content-Type when the handler set none.
	if _, ok := w.header["Content-Type"]; !ok && len(body) > 0 && bodyAllowed(w.status) {
		w.header.Set("Content-Type", http.DetectContentType(body))
	}
	return &abi.Response{Status: w.status, Header: w.header, Body: body}
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}
