package engine

import (
	"context"
	"net/http"

	"github.com/skiffhq/skiff/engine/bus"
)

// busConfig is the embedded NATS server's configuration.
func (e *Engine) busConfig() bus.Config {
	return bus.Config{Name: e.cfg.NodeName, Logger: e.log}
}

// startRegistry starts the embedded image registry and returns the routes
// it serves on the API port. Not built yet.
func (e *Engine) startRegistry(ctx context.Context) (map[string]http.Handler, error) { return nil, nil }
