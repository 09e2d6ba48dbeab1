package netranges

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
)

// procNetFiles are the kernel's socket tables of this network namespace.
var procNetFiles = []string{"/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"}

// boundInProc reports whether any socket of this network namespace is
// bound to an address in p (listening, connected or UDP), from
// /proc/net. A table that does not exist (no IPv6, not Linux) is skipped.
func boundInProc(p netip.Prefix) (bool, error) {
	var errs []error
	for _, name := range procNetFiles {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		found, err := boundIn(f, p)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		if found {
			return true, nil
		}
	}
	return false, errors.Join(errs...)
}

// boundIn scans one /proc/net table: a header line, then one socket a
// line with its local address ("0100007F:1F90") second.
func boundIn(r io.Reader, p netip.Prefix) (bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		hexAddr, _, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		a, err := procAddr(hexAddr)
		if err != nil {
			return false, err
		}
		if p.Contains(a.Unmap()) {
			return true, nil
		}
	}
	return false, sc.Err()
}

// procAddr decodes an address as /proc/net prints it: the 32-bit words of
// the address in network order, each printed as a host-order integer.
func procAddr(s string) (netip.Addr, error) {
	b, err := hex.DecodeString(s)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.Addr{}, fmt.Errorf("address %q: not a /proc/net address", s)
	}
	out := make([]byte, len(b))
	for i := 0; i < len(b); i += 4 {
		binary.NativeEndian.PutUint32(out[i:], binary.BigEndian.Uint32(b[i:]))
	}
	a, _ := netip.AddrFromSlice(out)
	return a, nil
}
