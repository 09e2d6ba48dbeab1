package podstreams

import (
	"context"
	"io"
	"net/http"

	"github.com/skiffhq/skiff/internal/streams"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/httpstream/wsstream"
	kubeletpf "k8s.io/kubelet/pkg/cri/streaming/portforward"
)

// portForward serves pods/NAME/portforward (GET for WebSockets, POST for
// SPDY). One request carries every connection kubectl forwards; each
// becomes its own session to the node.
func (h *handlers) portForward(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		methodNotAllowed(w, r, "portforward")
		return
	}
	pod, err := h.pod(r)
	if err != nil {
		writeStatus(w, err)
		return
	}
	if pod.Spec.NodeName == "" {
		writeStatus(w, noHost(pod))
		return
	}
	if err := h.cfg.Client.Probe(r.Context(), pod.Spec.NodeName); err != nil {
		writeStatus(w, status(err, pod, ""))
		return
	}
	uw, ok := upgradable(w)
	if !ok {
		writeStatus(w, apierrors.NewBadRequest("port-forward needs an HTTP/1.1 connection upgrade"))
		return
	}
	// The kubelet's server calls PortForward with a background context; the
	// request's ends when the connection does, and ends its sessions.
	fw := &forwarder{ctx: r.Context(), c: h.cfg.Client, pod: pod}
	serveSPDY := func(w http.ResponseWriter, r *http.Request) {
		kubeletpf.ServePortForward(w, r, fw, pod.Name, pod.UID, nil, idleTimeout, streamCreationTimeout,
			kubeletpf.SupportedProtocols)
	}
	switch {
	case wsstream.IsWebSocketRequestWithTunnelingProtocol(r):
		countUpgrade("portforward-tunnel")
		serveTunneled(uw, r, serveSPDY)
	case wsstream.IsWebSocketRequest(r):
		countUpgrade("portforward-websocket")
		opts, err := kubeletpf.NewV4Options(r)
		if err != nil {
			writeStatus(w, apierrors.NewBadRequest(err.Error()))
			return
		}
		kubeletpf.ServePortForward(uw, r, fw, pod.Name, pod.UID, opts, idleTimeout, streamCreationTimeout,
			kubeletpf.SupportedProtocols)
	default:
		countUpgrade("portforward-spdy")
		serveSPDY(uw, r)
	}
}

// forwarder is the kubelet server's PortForwarder: one forwarded connection
// through the relay.
type forwarder struct {
	ctx context.Context
	c   *streams.Client
	pod *corev1.Pod
}

func (f *forwarder) PortForward(_ context.Context, _ string, _ types.UID, port int32, stream io.ReadWriteCloser) error {
	req := streams.PortForwardRequest{Namespace: f.pod.Namespace, Pod: f.pod.Name, UID: string(f.pod.UID), Port: port}
	// The kubelet's port-forward server writes the error's text to the
	// client's error stream: no host path in it (hostpaths.go).
	if err := f.c.PortForward(f.ctx, f.pod.Spec.NodeName, req, stream); err != nil {
		return hideHostPaths(err)
	}
	return nil
}
