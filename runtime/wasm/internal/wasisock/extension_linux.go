package wasisock

// The WasmEdge sockets extension to WASI preview1 (its second version,
// WasmEdge 0.12 and later), as github.com/stealthrocket/net, wasi-go and
// WasmEdge's Rust crate wasmedge_wasi_socket call it: the host side of
// outbound (and guest-made) sockets. Package sdk/abi documents the ABI.
//
// Every socket here is the Run's, like the pre-opened listeners: a
// non-blocking host descriptor in the Run's sockTable, waited for in
// poll_oneoff. The pod's network rules apply on the way: binds to the
// wildcard or to localhost take the pod IP, connections to localhost reach
// the pod IP, a connection to another loopback address leaves from the pod
// IP (so receivers and policies see who called), and the Firewall is asked
// before a connection is made or a datagram sent or taken.

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/tetratelabs/wazero/api"
	"golang.org/x/sys/unix"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// extension lists the functions wazero's WASI module lacks, with their
// implementations; sock_accept, sock_recv, sock_send and sock_shutdown are
// preview1's own (wrapWASI).
var extension = map[string]func(ctx context.Context, t *sockTable, mod api.Module, stack []uint64) uint64{
	"sock_open":         sockOpen,
	"sock_bind":         sockBind,
	"sock_listen":       sockListen,
	"sock_connect":      sockConnect,
	"sock_getlocaladdr": sockGetLocalAddr,
	"sock_getpeeraddr":  sockGetPeerAddr,
	"sock_recv_from":    sockRecvFrom,
	"sock_send_to":      sockSendTo,
	"sock_getsockopt":   sockGetsockopt,
	"sock_setsockopt":   sockSetsockopt,
	"sock_getaddrinfo":  sockGetaddrinfo,
}

// extensionFunc returns the implementation of the extension's function
// name for the Run of the calling context. A guest without a socket table
// (a handler instance) gets ENOTSUP.
func extensionFunc(name string) api.GoModuleFunction {
	fn := extension[name]
	return api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
		t := sockets(ctx)
		if t == nil {
			stack[0] = errnoNotsup
			return
		}
		stack[0] = fn(ctx, t, mod, stack)
	})
}

// socketOf returns the Run's open socket numbered by a guest argument.
func (t *sockTable) socketOf(arg uint64) (*sockFile, uint64) {
	f := t.files[uint32(arg)]
	if f == nil || f.closed {
		return nil, errnoBadf
	}
	return f, errnoSuccess
}

// sockOpen is sock_open(af, socktype, result.fd).
func sockOpen(_ context.Context, t *sockTable, mod api.Module, stack []uint64) uint64 {
	var domain, typ int
	switch uint32(stack[0]) {
	case afInet:
		domain = unix.AF_INET
	case afInet6:
		domain = unix.AF_INET6
	default:
		return errnoAfnosupport
	}
	switch uint32(stack[1]) {
	case sockStream, sockAny:
		typ = unix.SOCK_STREAM
	case sockDgram:
		typ = unix.SOCK_DGRAM
	default:
		return errnoProtonosupport
	}
	if t.conns >= maxConns {
		return errnoMfile
	}
	fd, err := unix.Socket(domain, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return toErrno(err)
	}
	gfd := t.add(&sockFile{fd: fd, dgram: typ == unix.SOCK_DGRAM, inet6: domain == unix.AF_INET6})
	if !mod.Memory().WriteUint32Le(uint32(stack[2]), gfd) {
		sockClose(t, t.files[gfd], mod, []uint64{uint64(gfd)})
		return errnoFault
	}
	return errnoSuccess
}

// sockBind is sock_bind(fd, addr, port).
func sockBind(_ context.Context, t *sockTable, mod api.Module, stack []uint64) uint64 {
	f, e := t.socketOf(stack[0])
	if e != errnoSuccess {
		return e
	}
	ap, e := readAddress(mod.Memory(), uint32(stack[1]), uint32(stack[2]))
	if e != errnoSuccess {
		return e
	}
	ap, e = t.bindAddress(f, ap)
	if e != errnoSuccess {
		return e
	}
	if err := unix.Bind(f.fd, sockaddrFor(f.inet6, ap)); err != nil {
		return toErrno(err)
	}
	f.bound = true
	return errnoSuccess
}

// bindAddress is where a guest's bind to ap binds on the host: with a pod
// IP, the wildcard and localhost are the pod's own address, and another
// address is not the pod's (EADDRNOTAVAIL, as in a network namespace
// without it).
func (t *sockTable) bindAddress(f *sockFile, ap netip.AddrPort) (netip.AddrPort, uint64) {
	pod := t.cfg.PodIP
	if !pod.IsValid() {
		return ap, errnoSuccess
	}
	ip := ap.Addr().Unmap()
	switch {
	case ip.IsUnspecified(), ip.IsLoopback() && (ip == netip.IPv6Loopback() || ip == netip.MustParseAddr("127.0.0.1")):
		return netip.AddrPortFrom(t.podAddrFor(ap.Addr()), ap.Port()), errnoSuccess
	case ip == pod:
		return ap, errnoSuccess
	}
	return ap, errnoAddrnotavail
}

// podAddrFor is the pod IP in the family of like (an IPv6 socket reaches an
// IPv4 pod IP as ::ffff:a.b.c.d).
func (t *sockTable) podAddrFor(like netip.Addr) netip.Addr {
	pod := t.cfg.PodIP
	if like.Is6() && pod.Is4() {
		return netip.AddrFrom16(pod.As16())
	}
	return pod
}

// sockListen is sock_listen(fd, backlog).
func sockListen(_ context.Context, t *sockTable, _ api.Module, stack []uint64) uint64 {
	f, e := t.socketOf(stack[0])
	if e != errnoSuccess {
		return e
	}
	if f.dgram {
		return errnoNotsup
	}
	if !f.bound {
		// listen on an unbound socket picks a port on every address: the
		// pod's, here.
		if e := t.bindToPod(f, netip.IPv4Unspecified()); e != errnoSuccess {
			return e
		}
	}
	backlog := int(int32(stack[1]))
	if backlog <= 0 || backlog > listenBacklog {
		backlog = listenBacklog
	}
	if err := unix.Listen(f.fd, backlog); err != nil {
		return toErrno(err)
	}
	f.listener = true
	return errnoSuccess
}

// bindToPod binds f to the pod IP, port 0, when the Run has one.
func (t *sockTable) bindToPod(f *sockFile, like netip.Addr) uint64 {
	if !t.cfg.PodIP.IsValid() {
		return errnoSuccess
	}
	if f.inet6 {
		like = netip.IPv6Unspecified()
	}
	ap := netip.AddrPortFrom(t.podAddrFor(like), 0)
	if err := unix.Bind(f.fd, sockaddrFor(f.inet6, ap)); err != nil {
		return toErrno(err)
	}
	f.bound = true
	return errnoSuccess
}

// destination is where a guest's connection or datagram to ap goes on the
// host: localhost is the pod's own address.
func (t *sockTable) destination(f *sockFile, ap netip.AddrPort) netip.AddrPort {
	if !t.cfg.PodIP.IsValid() {
		return ap
	}
	ip := ap.Addr().Unmap()
	if ip == netip.MustParseAddr("127.0.0.1") || ap.Addr() == netip.IPv6Loopback() {
		return netip.AddrPortFrom(t.podAddrFor(ap.Addr()), ap.Port())
	}
	return ap
}

// prepareEgress binds an unbound socket to the pod IP before it talks to
// dst when the pod IP can reach dst (a loopback pod IP reaches only
// loopback destinations), so the peer sees the pod's address.
func (t *sockTable) prepareEgress(f *sockFile, dst netip.AddrPort) uint64 {
	pod := t.cfg.PodIP
	if f.bound || !pod.IsValid() {
		return errnoSuccess
	}
	if pod.IsLoopback() != dst.Addr().Unmap().IsLoopback() {
		return errnoSuccess
	}
	return t.bindToPod(f, dst.Addr())
}

// allowEgress asks the Firewall about a connection to dst.
func (t *sockTable) allowEgress(f *sockFile, dst netip.AddrPort) bool {
	if t.cfg.Firewall == nil {
		return true
	}
	proto := skiffrt.TCP
	if f.dgram {
		proto = skiffrt.UDP
	}
	return t.cfg.Firewall.Allow(skiffrt.Egress, proto, netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port()), 0)
}

// allowIngress asks the Firewall about a connection from peer to the local
// address of fd.
func (t *sockTable) allowIngress(fd int, peer unix.Sockaddr, proto skiffrt.Protocol) bool {
	if t.cfg.Firewall == nil {
		return true
	}
	from, ok := addrPort(peer)
	if !ok {
		return true
	}
	var port uint16
	if sa, err := unix.Getsockname(fd); err == nil {
		if local, ok := addrPort(sa); ok {
			port = local.Port()
		}
	}
	return t.cfg.Firewall.Allow(skiffrt.Ingress, proto, from, port)
}

// sockConnect is sock_connect(fd, addr, port).
func sockConnect(_ context.Context, t *sockTable, mod api.Module, stack []uint64) uint64 {
	f, e := t.socketOf(stack[0])
	if e != errnoSuccess {
		return e
	}
	ap, e := readAddress(mod.Memory(), uint32(stack[1]), uint32(stack[2]))
	if e != errnoSuccess {
		return e
	}
	dst := t.destination(f, ap)
	if !t.allowEgress(f, dst) {
		// Refused by policy: the caller sees what a rejecting firewall
		// gives (ECONNREFUSED), at once rather than after a timeout.
		return errnoConnrefused
	}
	if e := t.prepareEgress(f, dst); e != errnoSuccess {
		return e
	}
	err := unix.Connect(f.fd, sockaddrFor(f.inet6, dst))
	f.bound = true
	switch {
	case err == nil:
		return errnoSuccess
	case err == unix.EINPROGRESS && f.nonblock:
		return errnoInprogress
	case err == unix.EINPROGRESS:
		// A blocking connect waits for the handshake.
		if e := t.wait(f.fd, unix.POLLOUT); e != errnoSuccess {
			return e
		}
		soerr, err := unix.GetsockoptInt(f.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return toErrno(err)
		}
		if soerr != 0 {
			return toErrno(unix.Errno(soerr))
		}
		return errnoSuccess
	}
	return toErrno(err)
}

// sockGetLocalAddr is sock_getlocaladdr(fd, addr, result.port).
func sockGetLocalAddr(_ context.Context, t *sockTable, mod api.Module, stack []uint64) uint64 {
	return t.putName(mod, stack, unix.Getsockname)
}

// sockGetPeerAddr is sock_getpeeraddr(fd, addr, result.port).
func sockGetPeerAddr(_ context.Context, t *sockTable, mod api.Module, stack []uint64) uint64 {
	return t.putName(mod, stack, unix.Getpeername)
}

func (t *sockTable) putName(mod api.Module, stack []uint64, name func(int) (unix.Sockaddr, error)) uint64 {
	f, e := t.socketOf(stack[0])
	if e != errnoSuccess {
		return e
	}
	sa, err := name(f.fd)
	if err != nil {
		return toErrno(err)
	}
	ap, ok := addrPort(sa)
	if !ok {
		return errnoAfnosupport
	}
	return writeAddress(mod.Memory(), uint32(stack[1]), uint32(stack[2]), ap)
}

// dataArgs are the socket (fd, stack[0]) and the guest's buffers (iovs,
// iovs_len: stack[1], stack[2]) of sock_recv_from and sock_send_to.
func (t *sockTable) dataArgs(mod api.Module, stack []uint64) (*sockFile, [][]byte, uint64) {
	f, e := t.socketOf(stack[0])
	if e != errnoSuccess {
		return nil, nil, e
	}
	if f.listener {
		return nil, nil, errnoNotconn
	}
	bufs, e := iovecs(mod.Memory(), uint32(stack[1]), uint32(stack[2]))
	if e != errnoSuccess {
		return nil, nil, e
	}
	return f, bufs, errnoSuccess
}

// sockRecvFrom is sock_recv_from(fd, iovs, iovs_len, addr, flags,
// result.port, result.nread, result.oflags).
func sockRecvFrom(_ context.Context, t *sockTable, mod api.Module, stack []uint64) uint64 {
	f, bufs, e := t.dataArgs(mod, stack)
	if e != errnoSuccess {
		return e
	}
	mem := mod.Memory()
	flags, e := recvFlags(uint32(stack[4]))
	if e != errnoSuccess {
		return e
	}
	var n, recvflags int
	var from unix.Sockaddr
	for {
		var err error
		n, _, recvflags, from, err = unix.RecvmsgBuffers(f.fd, bufs, nil, flags)
		switch {
		case err == nil && f.dgram && from != nil && !t.allowIngress(f.fd, from, skiffrt.UDP):
			// A datagram policy refuses never reaches the module.
			if flags&unix.MSG_PEEK != 0 {
				_, _, _ = unix.Recvfrom(f.fd, nil, 0)
			}
			continue
		case err == nil:
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN && !f.nonblock:
			if e := t.wait(f.fd, unix.POLLIN); e != errnoSuccess {
				return e
			}
			continue
		default:
			return toErrno(err)
		}
		break
	}
	if from == nil {
		// A stream socket: its peer.
		from, _ = unix.Getpeername(f.fd)
	}
	if ap, ok := addrPort(from); ok {
		if e := writeAddress(mem, uint32(stack[3]), uint32(stack[5]), ap); e != errnoSuccess {
			return e
		}
	}
	var oflags uint32
	if recvflags&unix.MSG_TRUNC != 0 {
		oflags = roflagDataTruncated
	}
	if !mem.WriteUint32Le(uint32(stack[6]), uint32(n)) || !mem.WriteUint32Le(uint32(stack[7]), oflags) {
		return errnoFault
	}
	return errnoSuccess
}

// sockSendTo is sock_send_to(fd, iovs, iovs_len, addr, port, flags,
// result.nwritten).
func sockSendTo(_ context.Context, t *sockTable, mod api.Module, stack []uint64) uint64 {
	f, bufs, e := t.dataArgs(mod, stack)
	if e != errnoSuccess {
		return e
	}
	mem := mod.Memory()
	var to unix.Sockaddr
	if f.dgram {
		ap, e := readAddress(mem, uint32(stack[3]), uint32(stack[4]))
		if e == errnoSuccess && ap.Addr().IsValid() && !ap.Addr().IsUnspecified() {
			dst := t.destination(f, ap)
			if !t.allowEgress(f, dst) {
				// Dropped, as a filtered datagram is: the sender cannot
				// tell.
				return writeCount(mem, uint32(stack[6]), totalLen(bufs))
			}
			if e := t.prepareEgress(f, dst); e != errnoSuccess {
				return e
			}
			to = sockaddrFor(f.inet6, dst)
		}
	}
	for {
		n, err := unix.SendmsgBuffers(f.fd, bufs, nil, to, unix.MSG_NOSIGNAL)
		switch {
		case err == nil:
			return writeCount(mem, uint32(stack[6]), n)
		case err == unix.EINTR:
		case err == unix.EAGAIN && !f.nonblock:
			if e := t.wait(f.fd, unix.POLLOUT); e != errnoSuccess {
				return e
			}
		default:
			return toErrno(err)
		}
	}
}

func totalLen(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

func writeCount(mem api.Memory, at uint32, n int) uint64 {
	if !mem.WriteUint32Le(at, uint32(n)) {
		return errnoFault
	}
	return errnoSuccess
}

// sockOption maps an extension option to the host's level and name.
func sockOption(level, name uint32) (int, int, bool) {
	switch level {
	case solSocket:
		opts := [...]int{unix.SO_REUSEADDR, unix.SO_TYPE, unix.SO_ERROR, unix.SO_DONTROUTE, unix.SO_BROADCAST,
			unix.SO_SNDBUF, unix.SO_RCVBUF, unix.SO_KEEPALIVE, unix.SO_OOBINLINE, -1 /* SO_LINGER */, unix.SO_RCVLOWAT,
			-1 /* SO_RCVTIMEO */, -1 /* SO_SNDTIMEO */, unix.SO_ACCEPTCONN}
		if int(name) < len(opts) && opts[name] >= 0 {
			return unix.SOL_SOCKET, opts[name], true
		}
	case ipprotoTCP:
		// TCP_NODELAY, by Linux's number (1) and by wasi-go's (15).
		if name == 1 || name == 15 {
			return unix.IPPROTO_TCP, unix.TCP_NODELAY, true
		}
	}
	return 0, 0, false
}

// sockGetsockopt is sock_getsockopt(fd, level, name, value, value_len):
// integer options only, as WasmEdge has them.
func sockGetsockopt(_ context.Context, t *sockTable, mod api.Module, stack []uint64) uint64 {
	f, e := t.socketOf(stack[0])
	if e != errnoSuccess {
		return e
	}
	level, name, ok := sockOption(uint32(stack[1]), uint32(stack[2]))
	if !ok {
		return errnoNoprotoopt
	}
	if uint32(stack[4]) < 4 {
		return errnoInval
	}
	v, err := unix.GetsockoptInt(f.fd, level, name)
	if err != nil {
		return toErrno(err)
	}
	switch name {
	case unix.SO_ERROR:
		if v != 0 {
			v = int(toErrno(unix.Errno(v)))
		}
	case unix.SO_TYPE:
		v = sockStream
		if f.dgram {
			v = sockDgram
		}
	}
	if level == unix.SOL_SOCKET && name == unix.SO_ERROR && v == 0 && f.connecting() {
		v = errnoInprogress
	}
	if !mod.Memory().WriteUint32Le(uint32(stack[3]), uint32(int32(v))) {
		return errnoFault
	}
	return errnoSuccess
}

// connecting reports whether a stream socket's non-blocking connect is
// still under way: SO_ERROR is 0 then, and Go's dialer in stealthrocket/net
// asks SO_ERROR once the socket is writable, so it is never asked early;
// the check keeps an early question from reading as success.
func (f *sockFile) connecting() bool {
	if f.dgram || f.listener {
		return false
	}
	if _, err := unix.Getpeername(f.fd); err == nil {
		return false
	}
	pfd := []unix.PollFd{{Fd: int32(f.fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(pfd, 0)
	return err == nil && n == 0
}

// sockSetsockopt is sock_setsockopt(fd, level, name, value, value_len).
func sockSetsockopt(_ context.Context, t *sockTable, mod api.Module, stack []uint64) uint64 {
	f, e := t.socketOf(stack[0])
	if e != errnoSuccess {
		return e
	}
	level, name, ok := sockOption(uint32(stack[1]), uint32(stack[2]))
	if !ok {
		return errnoNoprotoopt
	}
	switch name {
	case unix.SO_TYPE, unix.SO_ERROR, unix.SO_ACCEPTCONN:
		if level == unix.SOL_SOCKET {
			return errnoNoprotoopt // read-only
		}
	}
	if uint32(stack[4]) != 4 {
		return errnoInval
	}
	v, ok := mod.Memory().ReadUint32Le(uint32(stack[3]))
	if !ok {
		return errnoFault
	}
	if err := unix.SetsockoptInt(f.fd, level, name, int(int32(v))); err != nil {
		return toErrno(err)
	}
	return errnoSuccess
}

// readAddress reads a guest address: at addr, a buffer (pointer, length);
// a length of 4 or 16 is a bare IPv4 or IPv6 address (the extension's
// first version), 128 a family (u16) followed by the address.
func readAddress(mem api.Memory, addr, port uint32) (netip.AddrPort, uint64) {
	ptr, ok1 := mem.ReadUint32Le(addr)
	n, ok2 := mem.ReadUint32Le(addr + 4)
	if !ok1 || !ok2 {
		return netip.AddrPort{}, errnoFault
	}
	if n > addressV2Size {
		return netip.AddrPort{}, errnoInval
	}
	b, ok := mem.Read(ptr, n)
	if !ok {
		return netip.AddrPort{}, errnoFault
	}
	if n == addressV2Size {
		switch binary.LittleEndian.Uint16(b) {
		case afInet:
			b = b[2:6]
		case afInet6:
			b = b[2:18]
		default:
			return netip.AddrPort{}, errnoAfnosupport
		}
	}
	if port > 0xffff {
		return netip.AddrPort{}, errnoInval
	}
	ip, ok := netip.AddrFromSlice(b)
	if !ok {
		return netip.AddrPort{}, errnoInval
	}
	return netip.AddrPortFrom(ip, uint16(port)), errnoSuccess
}

// writeAddress writes ap into the guest's address buffer at addr (family
// and address, as readAddress reads a 128-byte one) and its port at port.
func writeAddress(mem api.Memory, addr, port uint32, ap netip.AddrPort) uint64 {
	ptr, ok1 := mem.ReadUint32Le(addr)
	n, ok2 := mem.ReadUint32Le(addr + 4)
	if !ok1 || !ok2 {
		return errnoFault
	}
	ip := ap.Addr().Unmap()
	family, raw := uint16(afInet), ip.AsSlice()
	if ip.Is6() {
		family = afInet6
	}
	if int(n) < 2+len(raw) {
		return errnoInval
	}
	b, ok := mem.Read(ptr, n)
	if !ok {
		return errnoFault
	}
	clear(b)
	binary.LittleEndian.PutUint16(b, family)
	copy(b[2:], raw)
	if !mem.WriteUint32Le(port, uint32(ap.Port())) {
		return errnoFault
	}
	return errnoSuccess
}

// sockaddrFor is ap as a host address for a socket of the family inet6
// says: an IPv6 socket takes IPv4 addresses in their mapped form.
func sockaddrFor(inet6 bool, ap netip.AddrPort) unix.Sockaddr {
	if inet6 {
		return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	return sockaddr(ap)
}

// sockaddr is ap as a host address of its own family.
func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	ip := ap.Addr().Unmap()
	if ip.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ip.As16()}
}

// addrPort is a host address as an AddrPort.
func addrPort(sa unix.Sockaddr) (netip.AddrPort, bool) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)), true
	}
	return netip.AddrPort{}, false
}

// getaddrinfoTimeout bounds one sock_getaddrinfo: the guest waits in it
// (it cannot be polled), as in a blocking getaddrinfo(3).
const getaddrinfoTimeout = 10 * time.Second

// maxHostName bounds the names sock_getaddrinfo reads (a DNS name is at
// most 253 bytes; a service name is short).
const maxHostName = 1024

// The guest's addrinfo (28 bytes) and the sockaddr it points to: see
// package sdk/abi.
const (
	aiFamilyOff     = 2
	aiSocktypeOff   = 3
	aiProtocolOff   = 4
	aiAddrlenOff    = 8
	aiAddrOff       = 12
	aiCanonlenOff   = 20
	aiNextOff       = 24
	saDataLenOff    = 4
	saDataOff       = 8
	wasiSockaddrLen = 16
)

// sockGetaddrinfo is sock_getaddrinfo(node, node_len, service,
// service_len, hints, res, max_res_len, result.res_len). The guest hands
// over a linked list of addrinfo entries, each with a sockaddr and its data
// buffer, which the host fills: per result the family, socket type and
// protocol, and in the data the port (big-endian u16) then the address.
// Names are resolved as the pod's resolv.conf says (Config.Resolver).
func sockGetaddrinfo(ctx context.Context, t *sockTable, mod api.Module, stack []uint64) uint64 {
	mem := mod.Memory()
	node, e := readName(mem, uint32(stack[0]), uint32(stack[1]))
	if e != errnoSuccess {
		return e
	}
	service, e := readName(mem, uint32(stack[2]), uint32(stack[3]))
	if e != errnoSuccess {
		return e
	}
	if node == "" && service == "" {
		return errnoInval
	}
	var flags uint16
	var family, socktype uint8
	if hints := uint32(stack[4]); hints != 0 {
		h, ok := mem.Read(hints, 8)
		if !ok {
			return errnoFault
		}
		flags, family, socktype = binary.LittleEndian.Uint16(h), h[aiFamilyOff], h[aiSocktypeOff]
	}
	if socktype == sockAny {
		socktype = sockStream
	}
	proto := uint32(protoTCP)
	network := "tcp"
	if socktype == sockDgram {
		proto, network = protoUDP, "udp"
	}

	port := 0
	if service != "" {
		p, err := lookupPort(network, service, flags&aiNumericServ != 0)
		if err != nil {
			return errnoInval
		}
		port = p
	}

	ctx, cancel := context.WithTimeout(ctx, getaddrinfoTimeout)
	defer cancel()
	var ips []netip.Addr
	switch ip, err := netip.ParseAddr(node); {
	case node == "" && flags&aiPassive != 0:
		ips = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	case node == "":
		ips = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	case err == nil:
		ips = []netip.Addr{ip.Unmap()}
	case flags&aiNumericHost != 0:
		return errnoInval
	default:
		ips, err = t.cfg.Resolver.LookupNetIP(ctx, node)
		if err != nil {
			return resolveErrno(err)
		}
	}
	ips = filterFamily(ips, family)
	if len(ips) == 0 {
		return errnoNoent
	}

	max := uint32(stack[6])
	cur, ok := mem.ReadUint32Le(uint32(stack[5]))
	if !ok {
		return errnoFault
	}
	count := uint32(0)
	for _, ip := range ips {
		if count >= max || cur == 0 {
			break
		}
		if e := putAddrinfo(mem, cur, ip, uint16(port), socktype, proto); e != errnoSuccess {
			return e
		}
		count++
		next, ok := mem.ReadUint32Le(cur + aiNextOff)
		if !ok {
			return errnoFault
		}
		cur = next
	}
	if !mem.WriteUint32Le(uint32(stack[7]), count) {
		return errnoFault
	}
	return errnoSuccess
}

// putAddrinfo fills the guest's addrinfo at ai with one result.
func putAddrinfo(mem api.Memory, ai uint32, ip netip.Addr, port uint16, socktype uint8, proto uint32) uint64 {
	family := uint8(afInet)
	if ip.Is6() {
		family = afInet6
	}
	sa, ok := mem.ReadUint32Le(ai + aiAddrOff)
	if !ok || sa == 0 {
		return errnoFault
	}
	dataLen, ok1 := mem.ReadUint32Le(sa + saDataLenOff)
	data, ok2 := mem.ReadUint32Le(sa + saDataOff)
	if !ok1 || !ok2 {
		return errnoFault
	}
	// WasmEdge's Rust crate allocates 26 bytes of data and says 14 (the
	// size of struct sockaddr's sa_data); an IPv6 address needs 18. wasi-go
	// reads 14 as 26 for the same reason.
	if dataLen == 14 {
		dataLen = 26
	}
	raw := ip.AsSlice()
	if int(dataLen) < 2+len(raw) {
		return errnoInval
	}
	buf, ok := mem.Read(data, 2+uint32(len(raw)))
	if !ok {
		return errnoFault
	}
	binary.BigEndian.PutUint16(buf, port)
	copy(buf[2:], raw)
	ok = mem.WriteUint32Le(sa, uint32(family)) &&
		mem.WriteByte(ai+aiFamilyOff, family) &&
		mem.WriteByte(ai+aiSocktypeOff, socktype) &&
		mem.WriteUint32Le(ai+aiProtocolOff, proto) &&
		mem.WriteUint32Le(ai+aiAddrlenOff, wasiSockaddrLen) &&
		mem.WriteUint32Le(ai+aiCanonlenOff, 0)
	if !ok {
		return errnoFault
	}
	return errnoSuccess
}

// readName reads a string argument; WasmEdge's callers end it with NUL.
func readName(mem api.Memory, ptr, n uint32) (string, uint64) {
	if n > maxHostName {
		return "", errnoInval
	}
	b, ok := mem.Read(ptr, n)
	if !ok {
		return "", errnoFault
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b), errnoSuccess
}
