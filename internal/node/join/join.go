// Package join is how a node finds a cluster's bus: it asks a server's API
// port (BusInfoPath, with the cluster token) where the bus listens. Worker
// nodes (engine.StartWorker) and the project's tests join this way.
package join

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// BusInfoPath is where the API port tells a joining node how to reach the
// bus: GET with the cluster token answers BusInfo as JSON.
const BusInfoPath = "/skiff/v1/bus"

// BusInfo is the answer at BusInfoPath.
type BusInfo struct {
	// URL is the bus's client address ("nats://host:port"); empty when the
	// bus listens nowhere (a single node: other nodes cannot join).
	URL string `json:"url"`
}

// ErrNoBus: the server's bus listens nowhere (a single-node server), so no
// node can join it.
var ErrNoBus = errors.New("the server's bus accepts no other nodes (start it with a bus listener)")

// BusURL asks the server at the API address server ("host:port") where its
// bus listens. With ca (PEM) the server's certificate must chain to it;
// without, the first contact trusts the certificate as presented, as a
// kubeadm join without a CA hash does.
func BusURL(ctx context.Context, server, token string, ca []byte) (string, error) {
	tlsConf := &tls.Config{InsecureSkipVerify: true} // see the doc comment
	if len(ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return "", errors.New("join: the CA holds no PEM certificate")
		}
		tlsConf = &tls.Config{RootCAs: pool}
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+server+BusInfoPath, nil)
	if err != nil {
		return "", fmt.Errorf("join: server address %q: %w", server, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("join: reach the server at %s: %w", server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return "", fmt.Errorf("join: the server at %s refused the token", server)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("join: %s%s answered %s", server, BusInfoPath, resp.Status)
	}
	var info BusInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return "", fmt.Errorf("join: bus address from %s: %w", server, err)
	}
	if info.URL == "" {
		return "", fmt.Errorf("join: %s: %w", server, ErrNoBus)
	}
	return info.URL, nil
}

// Handler answers BusInfoPath with url (put it behind the token check).
func Handler(url string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(BusInfo{URL: url})
	})
}
