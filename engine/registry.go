package engine

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/imageregistry"
	"github.com/skiffhq/skiff/internal/node/join"
)

const (
	// busSubdir holds the bus's JetStream files (DataDir/bus/jetstream):
	// the embedded registry's blobs, manifests and tags.
	busSubdir = "bus"
	// registryUploadsSubdir holds blob uploads in progress; emptied at start.
	registryUploadsSubdir = "registry/uploads"
)

// busConfig is the embedded NATS server's configuration. JetStream is on,
// with file storage in the data directory, for the embedded registry.
func (e *Engine) busConfig() bus.Config {
	cfg := bus.Config{Name: e.cfg.NodeName, Logger: e.log, JetStreamDir: filepath.Join(e.cfg.DataDir, busSubdir)}
	if e.cfg.BusListen != "" {
		cfg.Listen, cfg.Token = e.cfg.BusListen, e.token
	}
	return cfg
}

// registryReplicas is how many servers keep each registry object:
// min(3, servers). The engine runs one server today.
func (e *Engine) registryReplicas() int {
	servers := 1
	return min(3, servers)
}

// startRegistry opens the embedded image registry in the bus's JetStream,
// serves it to node agents over the bus (bus.SubjectRegistry) and returns its
// routes on the API port ("/v2/"), behind the cluster token.
func (e *Engine) startRegistry(ctx context.Context) (map[string]http.Handler, error) {
	conn, err := e.bus.Connect(ctx, "registry")
	if err != nil {
		return nil, fmt.Errorf("registry bus connection: %w", err)
	}
	e.stoppers = append(e.stoppers, conn.Close)
	reg, err := imageregistry.Open(ctx, imageregistry.Config{
		Bus:       conn,
		Replicas:  e.registryReplicas(),
		UploadDir: filepath.Join(e.cfg.DataDir, registryUploadsSubdir),
		Logger:    e.log,
	})
	if err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	e.stoppers = append(e.stoppers, reg.Close)
	// The bus server outlives Start's ctx; so must the responder.
	stop, err := imageregistry.Serve(context.WithoutCancel(ctx), conn, reg.Handler(), e.log)
	if err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	e.stoppers = append(e.stoppers, stop)
	return map[string]http.Handler{
		"/v2/":           imageregistry.Authenticate(e.token, reg.Handler()),
		join.BusInfoPath: imageregistry.Authenticate(e.token, join.Handler(e.busURL())),
	}, nil
}

// busURL is the bus's client address, or "" when it listens nowhere.
// Called during Start, once the bus runs.
func (e *Engine) busURL() string {
	if e.cfg.BusListen == "" {
		return ""
	}
	return e.bus.ClientURL()
}
