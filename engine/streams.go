package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/skiffhq/skiff/internal/apiserver/podstreams"
	"github.com/skiffhq/skiff/internal/streams"
	"github.com/skiffhq/skiff/raft"
)

// podStreams returns the handlers of the streaming pod subresources (log,
// exec, portforward), which relay to the pod's node over the bus on a
// connection of their own.
//
// The handlers read pods straight from the store (a linearizable read of
// the pod's key, decoded from its stored JSON) rather than through a
// client of the API: they run inside the API server, may be called before
// Start returns (while e.mu is held), and need nothing of the API's
// machinery for one read. Pods are stored unencrypted in their v1 form.
func (e *Engine) podStreams(ctx context.Context) (map[string]http.Handler, error) {
	conn, err := e.bus.Connect(ctx, "streams")
	if err != nil {
		return nil, fmt.Errorf("streams bus connection: %w", err)
	}
	e.stoppers = append(e.stoppers, conn.Close)
	store := e.store
	getPod := func(ctx context.Context, ns, name string) (*corev1.Pod, error) {
		kv, _, err := store.Get(ctx, "/registry/core/pods/"+ns+"/"+name, raft.ReadOptions{})
		if errors.Is(err, raft.ErrNotFound) {
			return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
		}
		if err != nil {
			return nil, fmt.Errorf("read pod %s/%s: %w", ns, name, err)
		}
		var pod corev1.Pod
		if err := json.Unmarshal(kv.Value, &pod); err != nil {
			return nil, fmt.Errorf("decode pod %s/%s: %w", ns, name, err)
		}
		return &pod, nil
	}
	return podstreams.Handlers(podstreams.HandlerConfig{Pod: getPod, Client: streams.NewClient(conn, e.log), Logger: e.log}), nil
}
