// Package join is how a node finds a cluster's bus: it asks a server's API
// port (BusInfoPath, with the cluster token) where the bus listens and which
// CA its certificate chains to. The token pins the cluster CA (Token), so a
// node never trusts a server on first use; BusDialer finds the bus again
// when it moves or its server dies. Worker nodes (engine.StartWorker) and the
// project's tests join this way.
package join

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// BusInfoPath is where the API port tells a joining node how to reach the
// bus: GET with the cluster token answers BusInfo as JSON.
const BusInfoPath = "/skiff/v1/bus"

// BusServerName is the DNS name every bus serving certificate carries, and
// the name a node checks it against (tls.Config.ServerName), whatever
// address it dials. The CA is the cluster's own and signs only skiff's
// servers, so "a certificate from this CA for this name" identifies the
// cluster's bus; checking the dialled address instead would fail behind NAT
// or when the bus listens on every interface.
const BusServerName = "bus.skiff.internal"

// BusInfo is the answer at BusInfoPath.
type BusInfo struct {
	// URL is the bus's client address ("tls://host:port"); empty when the
	// bus listens nowhere (a single node: other nodes cannot join).
	URL string `json:"url"`
	// URLs are the client addresses of every server's bus the cluster
	// knows (URL among them), so a node learns where to go when its
	// server dies. Empty from a server that is not clustered.
	URLs []string `json:"urls,omitempty"`
	// Servers are the API addresses ("host:port") of every server the
	// cluster knows, so an agent given one learns the others and asks them
	// where the bus is when its own server is gone. Empty from a server
	// that is not clustered.
	Servers []string `json:"servers,omitempty"`
	// CA is the cluster CA (PEM) the bus's certificate chains to.
	CA string `json:"ca,omitempty"`
	// ClusterDNS is the kube-dns Service's ClusterIP, where every node's
	// cluster DNS listens and what its pods' resolv.conf names; empty when
	// the cluster has none.
	ClusterDNS string `json:"clusterDNS,omitempty"`
	// ClusterDomain is the cluster's DNS domain ("cluster.local").
	ClusterDomain string `json:"clusterDomain,omitempty"`
}

// ErrNoBus: the server's bus listens nowhere (a single-node server), so no
// node can join it.
var ErrNoBus = errors.New("the server's bus accepts no other nodes (start it with a bus listener)")

// Discover asks the server at the API address server ("host:port") where
// its bus listens. token is the cluster token (see ParseToken): the
// server's certificate must chain to the CA it pins, or to ca (PEM) when
// given; a bare secret without ca is refused (ErrNoCAPin), and a server of
// another CA too (ErrCAMismatch), before the secret is sent.
func Discover(ctx context.Context, server, token string, ca []byte) (BusInfo, error) {
	tok, err := ParseToken(token)
	if err != nil {
		return BusInfo{}, err
	}
	client, err := HTTPClient(tok, ca)
	if err != nil {
		return BusInfo{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+server+BusInfoPath, nil)
	if err != nil {
		return BusInfo{}, fmt.Errorf("join: server address %q: %w", server, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Secret)
	resp, err := client.Do(req)
	if err != nil {
		return BusInfo{}, fmt.Errorf("join: reach the server at %s: %w", server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return BusInfo{}, fmt.Errorf("join: the server at %s refused the token", server)
	}
	if resp.StatusCode != http.StatusOK {
		return BusInfo{}, fmt.Errorf("join: %s%s answered %s", server, BusInfoPath, resp.Status)
	}
	var info BusInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return BusInfo{}, fmt.Errorf("join: bus address from %s: %w", server, err)
	}
	if info.URL == "" {
		return BusInfo{}, fmt.Errorf("join: %s: %w", server, ErrNoBus)
	}
	// The bus's CA must be the pinned one too: the answer came over a
	// checked connection, but a server must not hand out another CA.
	if tok.CAHash != nil && len(ca) == 0 {
		_, certs, err := pool([]byte(info.CA))
		if err != nil || !holdsHash(certs, tok.CAHash) {
			return BusInfo{}, fmt.Errorf("join: %s sent a bus CA other than the token's: %w", server, ErrCAMismatch)
		}
	}
	return info, nil
}

// DiscoverAny is Discover against each of servers in turn, and answers
// with the first that replies and its address. When ctx has a deadline,
// each server gets an equal share of what is left, so one that accepts
// connections and never answers (a black-holed link) leaves time for the
// rest. A refusal of the server's
// identity (ErrCAMismatch, ErrNoCAPin) ends the search: another server of
// the same cluster would be refused the same way, and it must be seen.
func DiscoverAny(ctx context.Context, servers []string, token string, ca []byte) (BusInfo, string, error) {
	if len(servers) == 0 {
		return BusInfo{}, "", errors.New("join: no server address")
	}
	var errs []error
	for i, s := range servers {
		attempt, cancel := ctx, context.CancelFunc(func() {})
		if d, ok := ctx.Deadline(); ok {
			attempt, cancel = context.WithTimeout(ctx, time.Until(d)/time.Duration(len(servers)-i))
		}
		info, err := Discover(attempt, s, token, ca)
		cancel()
		if err == nil {
			return info, s, nil
		}
		if errors.Is(err, ErrCAMismatch) || errors.Is(err, ErrNoCAPin) || ctx.Err() != nil {
			return BusInfo{}, "", err
		}
		errs = append(errs, err)
	}
	return BusInfo{}, "", errors.Join(errs...)
}

// TLSConfig is the TLS configuration a node dials the bus with: it trusts ca
// (the CA the operator gave, PEM) or, without one, the CA the answer
// carried (which Discover checked against the token's pin); and it checks
// the certificate against BusServerName.
func (i BusInfo) TLSConfig(ca []byte) (*tls.Config, error) {
	if len(ca) == 0 {
		ca = []byte(i.CA)
	}
	if len(ca) == 0 {
		return nil, errors.New("join: no CA to check the bus's certificate with (the server sent none)")
	}
	p, _, err := pool(ca)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: p, ServerName: BusServerName, MinVersion: tls.VersionTLS12}, nil
}

// Handler answers BusInfoPath with url and the CA's PEM (put it behind the
// token check). A bus listening on every interface (0.0.0.0 or ::) is
// answered with the host the node reached the API at, the address it
// evidently can reach this server by.
func Handler(url string, ca []byte) http.Handler {
	return InfoHandler(BusInfo{URL: url, CA: string(ca)})
}

// InfoHandler is Handler with the whole answer given: info.URL is made
// reachable as Handler says.
func InfoHandler(info BusInfo) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		ans := info
		ans.URL = reachable(info.URL, r.Host)
		json.NewEncoder(w).Encode(ans)
	})
}

// reachable replaces an unspecified host in busURL with apiHost's host.
func reachable(busURL, apiHost string) string {
	u, err := url.Parse(busURL)
	if err != nil || u.Host == "" {
		return busURL
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return busURL
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return busURL
	}
	h, _, err := net.SplitHostPort(apiHost)
	if err != nil {
		h = strings.Trim(apiHost, "[]") // no port in the Host header
	}
	if h == "" {
		return busURL
	}
	u.Host = net.JoinHostPort(h, port)
	return u.String()
}
