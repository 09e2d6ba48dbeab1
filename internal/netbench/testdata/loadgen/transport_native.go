//go:build !wasip1

package main

import (
	"net"
	"net/http"
	"time"
)

// transport is net/http's with Go's dialer, keeping c idle connections per
// host, one per worker, and no proxy from the environment.
func transport(c int) http.RoundTripper {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: c,
		IdleConnTimeout:     90 * time.Second,
	}
}
