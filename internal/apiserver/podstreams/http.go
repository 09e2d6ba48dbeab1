package podstreams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiffhq/skiff/internal/apiserver"
	"github.com/skiffhq/skiff/internal/streams"
)

// Streaming connection limits, the kubelet's defaults: an exec or
// port-forward connection with no traffic at all for idleTimeout is closed;
// a client gets streamCreationTimeout to open its streams after the
// upgrade.
const (
	idleTimeout           = 4 * time.Hour
	streamCreationTimeout = 30 * time.Second
)

// HandlerConfig is what the API-side handlers need.
type HandlerConfig struct {
	// Pod reads a pod. A missing pod is an error for which
	// apierrors.IsNotFound holds (it is answered as is).
	Pod func(ctx context.Context, namespace, name string) (*corev1.Pod, error)
	// Client relays to the pod's node.
	Client *streams.Client
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Handlers returns the API server's handlers of the pod subresources "log",
// "exec", "attach" and "portforward" (apiserver.Config.PodStreams). They find the pod
// with apiserver.PodRefFrom, check it as the Kubernetes API server does
// (the container, the node it is bound to), and relay to the node:
//
//   - log: GET, answered with text/plain flushed as it arrives, or a Status
//     if the node refused before sending anything.
//   - exec: a WebSocket upgrade with v5.channel.k8s.io (kubectl ≥ 1.30's
//     default), older WebSocket channel protocols, or SPDY/3.1 with the
//     remote command protocols v1–v4 (kubectl's fallback, and older
//     kubectls).
//   - attach: exec's protocols, connected to the container's running
//     process rather than a new one.
//   - portforward: a WebSocket upgrade with SPDY/3.1+portforward.k8s.io,
//     SPDY tunnelled in WebSocket messages (kubectl ≥ 1.31's default), the
//     WebSocket v4 channel protocols (ports in the query), or SPDY/3.1 with
//     portforward.k8s.io.
func Handlers(cfg HandlerConfig) map[string]http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &handlers{cfg: cfg, log: cfg.Logger}
	return map[string]http.Handler{
		"log":         http.HandlerFunc(h.logs),
		"exec":        http.HandlerFunc(h.exec),
		"attach":      http.HandlerFunc(h.attach),
		"portforward": http.HandlerFunc(h.portForward),
	}
}

type handlers struct {
	cfg HandlerConfig
	log *slog.Logger
}

var podsResource = schema.GroupResource{Resource: "pods"}

// pod reads the request's pod.
func (h *handlers) pod(r *http.Request) (*corev1.Pod, error) {
	ref, ok := apiserver.PodRefFrom(r)
	if !ok {
		return nil, apierrors.NewInternalError(errors.New("pod stream handler called without a pod"))
	}
	pod, err := h.cfg.Pod(r.Context(), ref.Namespace, ref.Name)
	if err != nil {
		if _, ok := err.(apierrors.APIStatus); ok {
			return nil, err
		}
		return nil, apierrors.NewInternalError(err)
	}
	return pod, nil
}

// container resolves the container a request names, as the Kubernetes API
// server does: none named is fine only for a pod with exactly one container.
func container(pod *corev1.Pod, name string) (string, error) {
	if name == "" {
		switch len(pod.Spec.Containers) {
		case 1:
			return pod.Spec.Containers[0].Name, nil
		case 0:
			return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s", pod.Name))
		}
		msg := fmt.Sprintf("a container name must be specified for pod %s, choose one of: %s", pod.Name, containerNames(pod.Spec.Containers))
		if len(pod.Spec.InitContainers) > 0 {
			msg += " or one of the init containers: " + containerNames(pod.Spec.InitContainers)
		}
		return "", apierrors.NewBadRequest(msg)
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return name, nil
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return name, nil
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return name, nil
		}
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name))
}

func containerNames(cs []corev1.Container) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return "[" + strings.Join(names, " ") + "]"
}

// noHost is the Kubernetes API server's answer to exec or port-forward on a
// pod that is not scheduled.
func noHost(pod *corev1.Pod) error {
	return apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
}

// status turns a relay or Backend error into the Status the client sees.
// The node's text goes through hideHostPaths first.
func status(err error, pod *corev1.Pod, container string) error {
	if _, ok := err.(apierrors.APIStatus); ok {
		return err
	}
	err = hideHostPaths(err)
	// The Backend's text, without the sentinel's own words in front
	// ("%w: message" wrapping); Kubernetes' words if it said no more.
	bare := func(sentinel error, msg string) string {
		text := strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
		if text == sentinel.Error() {
			return msg
		}
		return text
	}
	switch {
	case errors.Is(err, streams.ErrNoPrevious):
		return apierrors.NewBadRequest(bare(streams.ErrNoPrevious,
			fmt.Sprintf("previous terminated container %q in pod %q not found", container, pod.Name)))
	case errors.Is(err, streams.ErrContainerNotFound):
		return apierrors.NewBadRequest(bare(streams.ErrContainerNotFound,
			fmt.Sprintf("container %q in pod %q is not available", container, pod.Name)))
	case errors.Is(err, streams.ErrPodNotRunning):
		return apierrors.NewBadRequest(bare(streams.ErrPodNotRunning,
			fmt.Sprintf("pod %q is not running on node %q", pod.Name, pod.Spec.NodeName)))
	case errors.Is(err, streams.ErrNodeUnreachable), errors.Is(err, streams.ErrSessionLost):
		return apierrors.NewServiceUnavailable(err.Error())
	case errors.Is(err, streams.ErrNodeTimeout):
		return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure,
			Code: http.StatusGatewayTimeout, Reason: metav1.StatusReasonTimeout, Message: err.Error()}}
	}
	return apierrors.NewInternalError(err)
}

// writeStatus answers with err as a Kubernetes Status.
func writeStatus(w http.ResponseWriter, err error) {
	var st metav1.Status
	if s, ok := err.(apierrors.APIStatus); ok {
		st = s.Status()
	} else {
		st = apierrors.NewInternalError(err).ErrStatus
	}
	st.Kind, st.APIVersion = "Status", "v1"
	if st.Code == 0 {
		st.Code = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(st.Code))
	_ = json.NewEncoder(w).Encode(st)
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, sub string) {
	writeStatus(w, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "pods/" + sub}, r.Method))
}

// upgrades counts the streaming protocols served, by name ("exec-v5",
// "exec-spdy", "exec-websocket", "portforward-tunnel",
// "portforward-websocket", "portforward-spdy"): which of kubectl's paths
// clients take.
var upgrades sync.Map

func countUpgrade(name string) {
	v, _ := upgrades.LoadOrStore(name, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// Upgrades counts the protocols exec and port-forward were served with
// since the process started, by name ("exec-v5", "exec-spdy",
// "portforward-tunnel", …): which of kubectl's paths clients take.
func Upgrades() map[string]int64 {
	m := map[string]int64{}
	upgrades.Range(func(k, v any) bool {
		m[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return m
}
