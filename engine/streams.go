package engine

import (
	"context"
	"net/http"
)

// podStreams returns the handlers of the streaming pod subresources (log,
// exec, portforward), which relay to the pod's node over the bus.
// Not built yet.
func (e *Engine) podStreams(ctx context.Context) (map[string]http.Handler, error) { return nil, nil }
