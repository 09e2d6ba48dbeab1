//go:build wasip1

package sdk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

// The WasmEdge sockets extension, as package sdk/abi documents it.
//
//go:wasmimport wasi_snapshot_preview1 sock_open
func sockOpen(af, socktype int32, fd unsafe.Pointer) syscall.Errno

//go:wasmimport wasi_snapshot_preview1 sock_connect
func sockConnect(fd int32, addr unsafe.Pointer, port uint32) syscall.Errno

//go:wasmimport wasi_snapshot_preview1 sock_getsockopt
func sockGetsockopt(fd int32, level, name uint32, value unsafe.Pointer, valueLen uint32) syscall.Errno

//go:wasmimport wasi_snapshot_preview1 sock_getaddrinfo
func sockGetaddrinfo(node unsafe.Pointer, nodeLen uint32, service unsafe.Pointer, serviceLen uint32,
	hints unsafe.Pointer, res unsafe.Pointer, maxRes uint32, nres unsafe.Pointer) syscall.Errno

const (
	afInet      = 1
	afInet6     = 2
	sockDgram   = 1
	sockStream  = 2
	solSocket   = 0
	soError     = 2
	aiNumericSv = 1 << 3
)

// maxAddrs is how many addresses a lookup asks the host for.
const maxAddrs = 8

// addrinfo and sockaddr are the extension's result entries (32-bit
// pointers).
type addrinfo struct {
	flags        uint16
	family       uint8
	socktype     uint8
	protocol     uint32
	addrlen      uint32
	addr         uint32
	canonname    uint32
	canonnameLen uint32
	next         uint32
}

type sockaddr struct {
	family  uint32
	dataLen uint32
	data    uint32
	_       uint32
}

// LookupHost resolves host to its addresses through the host, which asks
// the cluster DNS with the pod's search domains (sock_getaddrinfo): a
// Service's short name, its FQDN, or any other name the node can resolve.
func LookupHost(host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	var infos [maxAddrs]addrinfo
	var addrs [maxAddrs]sockaddr
	var data [maxAddrs][26]byte
	for i := range infos {
		addrs[i] = sockaddr{dataLen: 26, data: uint32(uintptr(unsafe.Pointer(&data[i])))}
		infos[i].addr = uint32(uintptr(unsafe.Pointer(&addrs[i])))
		if i+1 < len(infos) {
			infos[i].next = uint32(uintptr(unsafe.Pointer(&infos[i+1])))
		}
	}
	hints := addrinfo{socktype: sockStream, flags: aiNumericSv}
	node := append([]byte(host), 0)
	service := []byte("0\x00")
	res := uint32(uintptr(unsafe.Pointer(&infos[0])))
	var n uint32
	errno := sockGetaddrinfo(unsafe.Pointer(&node[0]), uint32(len(node)), unsafe.Pointer(&service[0]), uint32(len(service)),
		unsafe.Pointer(&hints), unsafe.Pointer(&res), maxAddrs, unsafe.Pointer(&n))
	if errno != 0 {
		return nil, &net.DNSError{Err: errno.Error(), Name: host, IsNotFound: errno == syscall.ENOENT}
	}
	out := make([]netip.Addr, 0, n)
	for i := range min(int(n), maxAddrs) {
		switch addrs[i].family {
		case afInet:
			out = append(out, netip.AddrFrom4([4]byte(data[i][2:6])))
		case afInet6:
			out = append(out, netip.AddrFrom16([16]byte(data[i][2:18])))
		}
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

// Dial connects to address on the named network ("tcp", "tcp4", "tcp6",
// "udp", "udp4", "udp6") through the host's sockets (the WasmEdge sockets
// extension): a pod IP, a Service's ClusterIP, or a name LookupHost
// resolves. The connection leaves from the pod's IP and is subject to the
// NetworkPolicies that select the pod.
func Dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		p, lerr := net.LookupPort(network, portStr)
		if lerr != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: lerr}
		}
		port = uint64(p)
	}
	socktype := int32(sockStream)
	switch network {
	case "tcp", "tcp4", "tcp6":
	case "udp", "udp4", "udp6":
		socktype = sockDgram
	default:
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	ips, err := LookupHost(host)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	var last error
	for _, ip := range ips {
		ip = ip.Unmap()
		if (network == "tcp4" || network == "udp4") && !ip.Is4() || (network == "tcp6" || network == "udp6") && !ip.Is6() {
			continue
		}
		c, err := dialAddr(ctx, socktype, netip.AddrPortFrom(ip, uint16(port)))
		if err == nil {
			return c, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	if last == nil {
		last = fmt.Errorf("no %s address for %s", network, host)
	}
	return nil, &net.OpError{Op: "dial", Net: network, Err: last}
}

// dialAddr opens one socket and connects it, waiting for the handshake in
// Go's network poller, so other goroutines run meanwhile.
func dialAddr(ctx context.Context, socktype int32, ap netip.AddrPort) (net.Conn, error) {
	af := int32(afInet)
	if ap.Addr().Is6() {
		af = afInet6
	}
	var fd int32
	if errno := sockOpen(af, socktype, unsafe.Pointer(&fd)); errno != 0 {
		return nil, os.NewSyscallError("sock_open", errno)
	}
	if err := syscall.SetNonblock(int(fd), true); err != nil {
		_ = syscall.Close(int(fd))
		return nil, os.NewSyscallError("setnonblock", err)
	}
	raw := ap.Addr().AsSlice()
	var buf [128]byte
	binary.LittleEndian.PutUint16(buf[:], uint16(af))
	copy(buf[2:], raw)
	addr := struct{ ptr, n uint32 }{uint32(uintptr(unsafe.Pointer(&buf[0]))), uint32(len(buf))}
	errno := sockConnect(fd, unsafe.Pointer(&addr), uint32(ap.Port()))
	if errno != 0 && errno != syscall.EINPROGRESS {
		_ = syscall.Close(int(fd))
		return nil, os.NewSyscallError("sock_connect", errno)
	}
	// The *os.File is under Go's poller because the descriptor is
	// non-blocking; FileConn works on its own copy of it.
	f := os.NewFile(uintptr(fd), "socket")
	c, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		return nil, err
	}
	if errno == syscall.EINPROGRESS {
		if err := waitConnected(ctx, c); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	return c, nil
}

// waitConnected waits until a non-blocking connect has finished, or ctx
// ends: writable, then SO_ERROR says how it went.
func waitConnected(ctx context.Context, c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return errors.New("sdk: connection has no descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetWriteDeadline(d)
		defer c.SetWriteDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	var connErr error
	werr := rc.Write(func(fd uintptr) bool {
		var v int32
		if errno := sockGetsockopt(int32(fd), solSocket, soError, unsafe.Pointer(&v), 4); errno != 0 {
			connErr = os.NewSyscallError("sock_getsockopt", errno)
			return true
		}
		switch syscall.Errno(v) {
		case 0:
			return true
		case syscall.EINPROGRESS, syscall.EALREADY, syscall.EINTR:
			return false // not yet: wait for writability again
		default:
			connErr = os.NewSyscallError("connect", syscall.Errno(v))
			return true
		}
	})
	if werr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return werr
	}
	return connErr
}

// Transport is an http.RoundTripper whose connections go through Dial:
// net/http's client, with keep-alive and every feature of
// http.Transport, from a Wasm pod.
var Transport http.RoundTripper = &http.Transport{
	DialContext:         Dial,
	MaxIdleConnsPerHost: 16,
	IdleConnTimeout:     90 * time.Second,
}

// HTTPClient returns an *http.Client over Transport.
func HTTPClient() *http.Client { return &http.Client{Transport: Transport} }

// Go's own resolver (net.DefaultResolver, which reads the pod's
// /etc/resolv.conf) talks to the name servers through Dial, so
// net.LookupHost and friends work in a Wasm pod: wasip1's net package has
// no dialer of its own.
func init() {
	net.DefaultResolver.PreferGo = true
	net.DefaultResolver.Dial = Dial
}
