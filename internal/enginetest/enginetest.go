// Package enginetest reaches a running engine as a node would, for tests
// outside package engine: the engine's public API hands out no internals,
// so a test that wants the bus joins it over the network like a worker.
package enginetest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffhq/skiff/engine"
	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/join"
)

// DialBus connects to e's bus as a worker node named name does: it reads
// the cluster token and the API address from e's data directory, asks the
// API port where the bus listens, and dials it with the token, checking the
// bus's certificate with the cluster CA. The connection has the node
// identity's permissions. e must have
// been started with Config.BusListen set ("127.0.0.1:0" in tests).
func DialBus(ctx context.Context, e *engine.Engine, name string) (*bus.Conn, error) {
	dir := e.Config().DataDir
	token, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		return nil, fmt.Errorf("enginetest: %w", err)
	}
	kc, err := clientcmd.LoadFromFile(e.KubeconfigPath())
	if err != nil {
		return nil, fmt.Errorf("enginetest: %w", err)
	}
	kctx, ok := kc.Contexts[kc.CurrentContext]
	if !ok || kc.Clusters[kctx.Cluster] == nil {
		return nil, fmt.Errorf("enginetest: %s has no current cluster", e.KubeconfigPath())
	}
	cluster := kc.Clusters[kctx.Cluster]
	u, err := url.Parse(cluster.Server)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("enginetest: kubeconfig server %q is not a URL", cluster.Server)
	}
	tok := strings.TrimSpace(string(token))
	info, err := join.Discover(ctx, u.Host, tok, cluster.CertificateAuthorityData)
	if err != nil {
		return nil, err
	}
	tlsConf, err := info.TLSConfig(cluster.CertificateAuthorityData)
	if err != nil {
		return nil, err
	}
	parsed, err := join.ParseToken(tok) // the file pins the CA; the bus wants the secret
	if err != nil {
		return nil, err
	}
	return bus.Dial(ctx, info.URL, parsed.Secret, name, tlsConf)
}
