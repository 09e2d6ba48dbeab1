package engine

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/skiffhq/skiff/internal/imageregistry"
	"github.com/skiffhq/skiff/internal/node/join"
)

// registryUploadsSubdir holds blob uploads in progress; emptied at start.
const registryUploadsSubdir = "registry/uploads"

// registryReplicas is how many servers keep each registry object:
// min(3, servers). Each server keeps its own JetStream (startJetStreamBus), so one.
func (e *Engine) registryReplicas() int {
	servers := 1
	return min(3, servers)
}

// startRegistry opens the embedded image registry in the bus's JetStream,
// serves it to node agents over the bus (bus.SubjectRegistry) and returns its
// routes on the API port ("/v2/"), behind the cluster token.
func (e *Engine) startRegistry(ctx context.Context) (map[string]http.Handler, error) {
	conn, err := e.jetStreamConn(ctx, "registry")
	if err != nil {
		return nil, fmt.Errorf("registry bus connection: %w", err)
	}
	e.stoppers = append(e.stoppers, conn.Close)
	serveConn := conn
	if e.cl.jsBus != nil { // JetStream on a bus of its own: serve nodes on the routed one
		if serveConn, err = e.bus.Connect(ctx, "registry-serve"); err != nil {
			return nil, fmt.Errorf("registry bus connection: %w", err)
		}
		e.stoppers = append(e.stoppers, serveConn.Close)
	}
	peers, err := e.registryPeers()
	if err != nil {
		return nil, err
	}
	reg, err := imageregistry.Open(ctx, imageregistry.Config{
		Peers:     peers,
		Bus:       conn,
		Replicas:  e.registryReplicas(),
		UploadDir: filepath.Join(e.cfg.DataDir, registryUploadsSubdir),
		Logger:    e.log,
	})
	if err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	e.stoppers = append(e.stoppers, reg.Close)
	// The bus server outlives Start's ctx; so must the responder. Nodes
	// only pull: pushes go to the API port, with the admin token.
	stop, err := imageregistry.Serve(context.WithoutCancel(ctx), serveConn, readOnly(reg.Handler()), e.log)
	if err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	e.stoppers = append(e.stoppers, stop)
	return map[string]http.Handler{
		"/v2/":              e.authenticate(reg.Handler()),
		join.CredentialPath: e.authenticate(e.nodeAuth.credentialHandler()),
		// join.BusInfoPath is among clusterRoutes: it names every server's bus.
	}, nil
}

// readOnly answers only GET and HEAD with h, and 405 otherwise: the
// registry as nodes see it over the bus, where the node identity is the
// only credential and must not be enough to replace an image every node
// runs.
func readOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the registry is read-only over the bus; push to the API port", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}
