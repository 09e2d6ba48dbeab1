package engine

import (
	"context"
	"net/http"

	"github.com/skiffhq/skiff/engine/bus"
	"github.com/skiffhq/skiff/engine/registry"
)

// imageTransport carries the node's registry traffic: requests for the
// embedded registry's host go over the agent's bus connection (agents reach
// the control plane only through the bus), the rest to the network.
func (e *Engine) imageTransport(conn *bus.Conn) http.RoundTripper {
	return registry.Transport(conn, nil)
}

// imageResolver points a pod's image at the embedded registry when it holds
// it, so `skiff image import hello.wasm hello:1` makes `image: hello:1` work
// on every node. When the registry cannot be asked, the reference is pulled
// as written.
func (e *Engine) imageResolver(conn *bus.Conn) func(ctx context.Context, ref string) (string, error) {
	c := registry.NewClient(conn)
	return func(ctx context.Context, ref string) (string, error) {
		r, ok, err := c.Resolve(ctx, ref)
		if err != nil {
			e.log.Warn("embedded registry not reachable; pulling the image as written", "image", ref, "err", err)
			return ref, nil
		}
		if ok {
			return r, nil
		}
		return ref, nil
	}
}
