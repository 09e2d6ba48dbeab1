package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/skiffhq/skiff/internal/apiserver/pki"
	"github.com/skiffhq/skiff/internal/imageregistry"
)

// registryPeers links this server's registry to the other servers'. Each
// server keeps its own JetStream (startJetStreamBus), so the registry
// replicates at its own level: a push is copied to every peer's API port,
// and a miss is fetched from the peers (docs/rationale.md). Nil for a
// server that is not clustered: one server has nobody to copy to.
func (e *Engine) registryPeers() (*imageregistry.Peers, error) {
	if e.cl.peerTLS == nil || e.store.Addr() == "" {
		return nil, nil
	}
	ca, err := pki.CA(filepath.Join(e.cfg.DataDir, pkiSubdir))
	if err != nil {
		return nil, fmt.Errorf("registry peers: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr.Proxy = nil // peers are dialled directly, never through an environment proxy
	tr.MaxIdleConnsPerHost = 4
	e.stoppers = append(e.stoppers, tr.CloseIdleConnections)
	return &imageregistry.Peers{URLs: e.registryPeerURLs, Client: &http.Client{Transport: tr}, Token: e.token}, nil
}

// registryPeerURLs lists the other servers' API ports: the server records
// in the store (this server's copy, so a minority server still answers),
// or cluster.json's peers while the store has none to give.
func (e *Engine) registryPeerURLs() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	recs, err := e.serverRecords(ctx, true)
	if err != nil || len(recs) == 0 {
		e.cl.mu.Lock()
		recs = append(recs[:0], e.cl.state.Peers...)
		e.cl.mu.Unlock()
	}
	var out []string
	for _, s := range recs {
		if s.Name != e.cfg.NodeName && s.API != "" {
			out = append(out, "https://"+s.API)
		}
	}
	return out
}
