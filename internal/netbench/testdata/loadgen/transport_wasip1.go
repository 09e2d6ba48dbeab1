//go:build wasip1

package main

import (
	"net/http"

	"github.com/skiffhq/skiff/sdk"
)

// transport is the SDK's (connections through the host's sockets, from the
// pod's IP) keeping c idle connections per host, one per worker.
func transport(c int) http.RoundTripper {
	t := sdk.Transport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = c
	return t
}
