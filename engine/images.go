package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/imageregistry"
	"k8s.io/client-go/rest"
)

// imageTransport carries the node's registry traffic: requests for the
// embedded registry's host go over the agent's bus connection (agents reach
// the control plane only through the bus), the rest to the network, if
// Config.ImageHosts allows their host.
func imageTransport(conn *bus.Conn, imageHosts []string) http.RoundTripper {
	var base http.RoundTripper = http.DefaultTransport
	if len(imageHosts) > 0 {
		base = hostFilter{allowed: imageHosts, next: base}
	}
	return imageregistry.Transport(conn, base)
}

// hostFilter refuses requests to registries outside the allowed list before
// anything is resolved or dialled.
type hostFilter struct {
	allowed []string
	next    http.RoundTripper
}

func (f hostFilter) RoundTrip(req *http.Request) (*http.Response, error) {
	if !imageHostAllowed(f.allowed, req.URL.Host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("pulls from %s are not allowed on this node (allowed: %v)", req.URL.Host, f.allowed)
	}
	return f.next.RoundTrip(req)
}

func imageHostAllowed(allowed []string, hostport string) bool {
	if slices.Contains(allowed, hostport) {
		return true
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if slices.Contains(allowed, host) {
		return true
	}
	if slices.Contains(allowed, "loopback") {
		if host == "localhost" {
			return true
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return true
		}
	}
	return false
}

// imageResolver points a pod's image at the embedded registry when it holds
// it, so `skiff image import hello.wasm hello:1` makes `image: hello:1` work
// on every node. When the registry cannot be asked, the reference is pulled
// as written.
func imageResolver(conn *bus.Conn, log *slog.Logger) func(ctx context.Context, ref string) (string, error) {
	c := imageregistry.NewClient(conn)
	return func(ctx context.Context, ref string) (string, error) {
		r, ok, err := c.Resolve(ctx, ref)
		if err != nil {
			log.Warn("embedded registry not reachable; pulling the image as written", "image", ref, "err", err)
			return ref, nil
		}
		if ok {
			return r, nil
		}
		return ref, nil
	}
}

// ErrPushUnauthorized: the cluster refused the REST config's credentials
// (401). Nothing was stored.
var ErrPushUnauthorized = imageregistry.ErrPushUnauthorized

// PushImage puts a Wasm module into the embedded registry of the cluster cfg
// reaches (an engine's RESTConfig, or a kubeconfig's), as NAME:TAG (TAG
// "latest" when missing), through the API port's OCI routes with cfg's
// credentials. It returns the pinned reference; `image: NAME:TAG` in a pod
// then resolves to it on every node. This is what `skiff image import` does.
func PushImage(ctx context.Context, cfg *rest.Config, module []byte, nameTag string) (string, error) {
	return imageregistry.Push(ctx, cfg, module, nameTag)
}
