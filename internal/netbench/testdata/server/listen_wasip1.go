//go:build wasip1

package main

import (
	"net"

	"github.com/skiffhq/skiff/sdk"
)

// listen is the pod's first container port, which the host opened on the
// pod's IP.
func listen([]string) (net.Listener, error) { return sdk.Listener(0) }
