// Package abi is the binary interface between skiff's Wasm host
// (runtime/wasm) and guests: the exports an SDK handler module provides, the
// encoding of the requests and responses that cross it, and the file
// descriptors of pre-opened listeners. Both sides import it, so the host and
// the Go SDK cannot disagree; an SDK in another language implements what this
// file documents.
//
// # HTTP handler modules (reactors)
//
// A handler module is a WASI reactor: it exports `_initialize` (run once per
// instance, before anything else; Go's -buildmode=c-shared makes it) and no
// `_start`, its memory as "memory", and these functions:
//
//	skiff_abi_version() -> i32                  // returns Version
//	skiff_http_alloc(size i32) -> i32           // a guest buffer of size bytes
//	skiff_http_handle(ptr i32, len i32) -> i64  // serve one request
//
// Per request the host encodes the request (AppendRequest), calls
// skiff_http_alloc for a buffer of that size, writes the bytes there and calls
// skiff_http_handle with the buffer's address and length. The guest decodes
// it, runs its handler, encodes the response (AppendResponse) into memory it
// owns and returns its address in the high 32 bits of the result and its
// length in the low 32 bits. The host reads the response before it calls into
// the instance again; the guest may reuse both buffers from the next call on.
// A result of 0 means the guest could not decode the request: the host
// answers 500 and discards the instance.
//
// An instance serves one request at a time. Anything the guest writes to fd 1
// and 2 is the pod's log. A trap or a proc_exit ends the instance: the host
// answers 500 for that request and replaces the instance.
//
// # Encoding
//
// Integers are little-endian u32; a string or byte slice is its length (u32)
// followed by its bytes. A request is
//
//	method, request URI (as on the request line: "/path?query"), host,
//	remote address ("ip:port"), header count, header count × (name, value),
//	body
//
// and a response is
//
//	status code, header count, header count × (name, value), body
//
// Header names are sent as they are in the host's http.Header (canonical
// form); a name with several values is sent once per value, in order.
//
// # Pre-opened listeners (commands)
//
// A command module that serves TCP gets one listening socket per container
// port, in the order of the pod's ports, where wazero and wasmtime put
// pre-opened sockets: right after the pre-opened directories of the pod's
// volumes (at fd 3 when the pod has none). The environment says where, in
// the systemd socket-activation convention that wasmtime's --listenfd
// follows:
//
//	LISTEN_FDS=2                 // how many
//	LISTEN_FDNAMES=http:metrics  // the container ports' names ("port-8080" for an unnamed one)
//	LISTEN_FDS_FIRST_FD=5        // the first one's descriptor (systemfd's extension)
//	LISTEN_PID=<the guest's getpid>
//
// A listener reports itself to fd_prestat_get as pre-opened with a tag of 1
// (not a directory, as WasmEdge reports pre-opened sockets), so Go's runtime
// and wasi-libc skip it while they look for directories; the directory the
// node pre-opens after the listeners (/etc, with resolv.conf and hosts) is
// found. A Go guest finds its listeners with
//
//	syscall.SetNonblock(fd, true) // see below
//	ln, err := net.FileListener(os.NewFile(uintptr(fd), ""))
//
// (the sdk package's Listener does this), or by trying net.FileListener on
// the descriptors from 3 up, which fails on directories and files. Setting
// non-blocking mode first matters for Go: os.NewFile registers a descriptor
// with Go's network poller only when it is already non-blocking, and a
// blocking accept stops every goroutine of a wasip1 program.
//
// A listener is bound from the start but listens only once the guest first
// accepts on it or polls it: until then a connection to the port is refused,
// as a container's port is before its server listens, so a tcpSocket probe
// and a Service's endpoints mean what they mean on Kubernetes.
//
// Connections the guest accepts, and sockets it opens, get descriptors from
// FirstSocketFD up.
//
// # Sockets the guest opens (the WasmEdge sockets extension)
//
// The host provides the WasmEdge sockets extension to WASI preview1 (its
// second version, as WasmEdge 0.12+, wasi-go and github.com/stealthrocket/net
// have it), in module wasi_snapshot_preview1; every parameter is an i32 and
// every function returns an errno:
//
//	sock_open(af, socktype, *fd)                       // af 1 IPv4, 2 IPv6; socktype 1 datagram, 2 stream
//	sock_bind(fd, *addr, port)
//	sock_listen(fd, backlog)
//	sock_connect(fd, *addr, port)                      // EINPROGRESS when non-blocking
//	sock_getlocaladdr(fd, *addr, *port)
//	sock_getpeeraddr(fd, *addr, *port)
//	sock_recv_from(fd, iovs, iovs_len, *addr, riflags, *port, *nread, *roflags)
//	sock_send_to(fd, iovs, iovs_len, *addr, port, siflags, *nwritten)
//	sock_getsockopt(fd, level, name, *value, value_len) // int options; level 0 SOL_SOCKET, 6 TCP
//	sock_setsockopt(fd, level, name, *value, value_len)
//	sock_getaddrinfo(*node, node_len, *service, service_len, *hints, **res, max_res, *nres)
//
// plus preview1's sock_accept, sock_recv, sock_send, sock_shutdown, fd_read,
// fd_write, fd_close, fd_fdstat_set_flags (non-blocking mode) and
// poll_oneoff, which all work on these sockets. An address argument points
// to a buffer descriptor (u32 pointer, u32 length): a length of 4 or 16 is a
// bare IPv4 or IPv6 address, 128 a little-endian u16 family followed by the
// address; results are written in the 128-byte form. SO_ERROR reads as a
// WASI errno. sock_getaddrinfo resolves through the pod's cluster DNS with
// its search domains; it fills the guest's linked list of addrinfo entries
// (u16 flags, u8 family, u8 socktype, u32 protocol, u32 addrlen, u32 addr,
// u32 canonname, u32 canonname_len, u32 next), each addr pointing to (u32
// family, u32 data_len, u32 data) with the port (big-endian u16) and the
// address in data.
//
// The pod's network applies: a bind to the wildcard or to localhost binds
// the pod IP; a connection to localhost reaches the pod itself; connections
// leave from the pod IP; NetworkPolicy refuses a connection with
// ECONNREFUSED and drops a datagram silently.
//
// # Messaging and key-value (host module "skiff")
//
// A guest, a command or a handler module alike, may import these functions
// from the host module named HostModule. Every parameter is an i32 unless
// it says i64; every function returns an i32 status (Status*: 0 is success).
// A pointer and its length that do not lie inside the guest's memory,
// names that break the syntax below or data over the limits answer
// StatusInvalid and do nothing.
//
//	skiff_msg_publish(subject, subject_len, reply, reply_len, data, data_len)
//	skiff_msg_request(subject, subject_len, data, data_len, timeout_ms, *result_len)
//	skiff_msg_subscribe(subject, subject_len, queue, queue_len, *id)
//	skiff_msg_next(id, timeout_ms, *result_len)
//	skiff_msg_unsubscribe(id)
//	skiff_kv_get(key, key_len, *result_len)
//	skiff_kv_put(key, key_len, value, value_len, *revision u64)
//	skiff_kv_create(key, key_len, value, value_len, *revision u64)
//	skiff_kv_update(key, key_len, value, value_len, revision i64, *revision u64)
//	skiff_kv_delete(key, key_len)
//	skiff_kv_watch(key, key_len, *id)
//	skiff_kv_next(id, timeout_ms, *result_len)
//	skiff_kv_unwatch(id)
//	skiff_result_read(buf, buf_len)
//
// Subjects are the guest's own: the host places them under the pod's
// namespace, so "orders.new" in namespace shop is a subject no pod of
// another namespace can publish to or receive from, and no guest reaches
// the engine's own subjects. See ValidSubject for the syntax. A reply
// subject (publish's reply, a received message's reply) is such a subject
// too; a message whose reply lies outside the namespace arrives without
// one. A queue name (subscribe) makes the subscribers of one queue share
// the messages, one each, as NATS queue groups do; empty is a plain
// subscription.
//
// Functions that produce bytes (request, next, get) write their length to
// *result_len and keep them in the instance's one result slot, until the
// guest copies them out with skiff_result_read (buf_len must be the result's
// length; the slot is then empty) or until the next function that produces
// a result replaces them. A message result is the encoding of Message
// (AppendMessage), a key-value result that of Entry (AppendEntry).
//
// Waiting: request, next and kv_next wait up to timeout_ms milliseconds
// (at most MaxTimeoutMillis; 0 does not wait) and answer StatusTimeout
// when nothing came. A wait blocks the calling instance, which for a
// wasip1 guest is every goroutine of the program (it has one thread), so
// a guest that also serves should wait in short slices. A wait also ends
// when the run ends (the pod stops, a handler's request times out).
//
// Bounds: at most MaxSubscriptions subscriptions and watches per instance
// (StatusLimit beyond); each keeps at most MaxQueued messages not yet
// taken with next, all of them together at most MaxQueuedBytes bytes, and
// past that drops its oldest ones (the next message taken says how many:
// see Message.Dropped).
//
// Key-value: one store per namespace, shared by its pods. Keys follow
// ValidKey; values are at most MaxValueSize bytes. Every write gets a new
// revision, a number that grows with every write to the namespace's store.
// get of a missing or deleted key answers StatusNotFound. create writes
// only when the key is absent (or deleted), else StatusExists; update
// writes only when the key's revision is the one given, else StatusExists
// (compare-and-set: read, compute, update, retry on StatusExists). watch
// takes a key or a pattern with the subject wildcards (ValidSubject's
// rules apply to it with '.' separating tokens) and delivers each later
// change (puts and deletes, Entry.Deleted) from then on; it does not
// replay current values, so watch first and get second.
//
// A pod whose node offers none of this (the runtime used on its own)
// answers StatusUnavailable everywhere; so does a request nobody answers.
package abi

import (
	"encoding/binary"
	"errors"
	"net/http"
)

// Version is what skiff_abi_version returns for this encoding.
const Version = 1

// Names of the exports of a handler module.
const (
	ExportVersion = "skiff_abi_version"
	ExportAlloc   = "skiff_http_alloc"
	ExportHandle  = "skiff_http_handle"
)

// FirstSocketFD is the guest file descriptor of the first socket the guest
// accepts or opens. It is 2^24: WASI runtimes number open files from 3 up,
// lowest free first, and each open file holds a host descriptor, so a guest
// cannot reach this number with files before the host's descriptor limit
// stops it.
const FirstSocketFD = 1 << 24

// Request is an HTTP request as it crosses the ABI.
type Request struct {
	Method     string
	RequestURI string
	Host       string
	RemoteAddr string
	Header     http.Header
	Body       []byte
}

// Response is an HTTP response as it crosses the ABI.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// ErrMalformed means bytes do not decode as a request or response.
var ErrMalformed = errors.New("abi: malformed message")

// AppendRequest appends the encoding of r to dst.
func AppendRequest(dst []byte, r *Request) []byte {
	dst = appendString(dst, r.Method)
	dst = appendString(dst, r.RequestURI)
	dst = appendString(dst, r.Host)
	dst = appendString(dst, r.RemoteAddr)
	dst = appendHeader(dst, r.Header)
	return appendBytes(dst, r.Body)
}

// DecodeRequest decodes a request. Strings are copied; Body aliases b.
func DecodeRequest(b []byte) (*Request, error) {
	d := decoder{b: b}
	r := &Request{
		Method:     d.string(),
		RequestURI: d.string(),
		Host:       d.string(),
		RemoteAddr: d.string(),
		Header:     d.header(),
	}
	r.Body = d.bytes()
	if d.bad || len(d.b) != 0 {
		return nil, ErrMalformed
	}
	return r, nil
}

// AppendResponse appends the encoding of r to dst.
func AppendResponse(dst []byte, r *Response) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(r.Status))
	dst = appendHeader(dst, r.Header)
	return appendBytes(dst, r.Body)
}

// DecodeResponse decodes a response. Strings are copied; Body aliases b.
func DecodeResponse(b []byte) (*Response, error) {
	d := decoder{b: b}
	r := &Response{Status: int(d.u32()), Header: d.header()}
	r.Body = d.bytes()
	if d.bad || len(d.b) != 0 {
		return nil, ErrMalformed
	}
	return r, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

func appendHeader(dst []byte, h http.Header) []byte {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	for k, vs := range h {
		for _, v := range vs {
			dst = appendString(dst, k)
			dst = appendString(dst, v)
		}
	}
	return dst
}

// decoder reads the encoding; after the first short read every read returns
// zero values and bad is set, so callers check once at the end.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) u32() uint32 {
	if d.bad || len(d.b) < 4 {
		d.bad = true
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.u32()
	if d.bad || uint64(n) > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) header() http.Header {
	n := d.u32()
	// Each entry takes at least 8 bytes: a count beyond that is a lie, and
	// must not size an allocation.
	if d.bad || uint64(n)*8 > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	h := make(http.Header, n)
	for range n {
		k, v := d.string(), d.string()
		if d.bad {
			return nil
		}
		h[k] = append(h[k], v)
	}
	return h
}
