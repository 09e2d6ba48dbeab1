//go:build !wasip1

package main

import "net"

// listen listens on TCP at args[0], default 127.0.0.1:0 (a free port).
func listen(args []string) (net.Listener, error) {
	addr := "127.0.0.1:0"
	if len(args) > 0 {
		addr = args[0]
	}
	return net.Listen("tcp", addr)
}
