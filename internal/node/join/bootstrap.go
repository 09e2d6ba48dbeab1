package join

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// How a server joins another's cluster, over the API port with the cluster
// token (see docs/rationale.md):
//
//   - GET BootstrapPath answers Bootstrap: what every server of a cluster
//     must hold alike (the CA and its key, Secrets' encryption keys, the
//     address ranges, the cluster domain) and the servers known now.
//   - POST MembersPath with a Member (ID and raft address) makes it a raft
//     voter; the server forwards the change to the raft leader.
//   - GET MembersPath answers the raft configuration ([]Member).
//   - DELETE MembersPath/NAME removes a server from the raft configuration
//     (and its Node and server record).
const (
	BootstrapPath = "/skiff/v1/join"
	MembersPath   = "/skiff/v1/members"
)

// ServerInfo is what a cluster knows of one of its servers: where its API,
// raft, bus routes and bus clients listen. Each server records its own in
// the store at every start.
type ServerInfo struct {
	Name     string `json:"name"`
	API      string `json:"api"`                // host:port of the Kubernetes API
	Raft     string `json:"raft"`               // host:port of raft and write forwarding
	BusRoute string `json:"busRoute,omitempty"` // host:port of the bus's route listener
	BusURL   string `json:"busURL,omitempty"`   // the bus's client URL (tls://host:port)
}

// Bootstrap is the cluster state a joining server copies before it starts:
// whatever must be identical on every server.
type Bootstrap struct {
	// CACert and CAKey are the cluster CA (PEM): a server mints its own
	// serving and peer certificates with them.
	CACert string `json:"caCert"`
	CAKey  string `json:"caKey"`
	// EncryptionKeys is the key ring Secrets are encrypted with at rest,
	// as the server stores it (DataDir/pki/encryption-keys).
	EncryptionKeys []byte `json:"encryptionKeys,omitempty"`
	// ServiceAccountKey signs ServiceAccount tokens (PEM, DataDir/pki/sa.key):
	// every server must hold the same one, so a token minted by one server
	// is good on all.
	ServiceAccountKey string `json:"serviceAccountKey,omitempty"`
	// ClusterPodCIDR and ServiceCIDR are the cluster's address ranges.
	ClusterPodCIDR string `json:"clusterPodCIDR"`
	ServiceCIDR    string `json:"serviceCIDR"`
	// ClusterDomain is the cluster's DNS domain.
	ClusterDomain string `json:"clusterDomain"`
	// Servers are the servers the cluster knows now.
	Servers []ServerInfo `json:"servers"`
}

// Member is one server in the raft configuration.
type Member struct {
	ID     string `json:"id"`
	Addr   string `json:"addr"`
	Voter  bool   `json:"voter"`
	Leader bool   `json:"leader,omitempty"`
}

// ErrRefused: the server refused the token's secret (another cluster's, or
// a mistyped one). Nothing was changed on either side.
var ErrRefused = errors.New("the server refused the token (wrong secret: use the token in the server's DATA-DIR/token)")

// FetchBootstrap asks the server at server ("host:port", its API) for the
// cluster's bootstrap data, checking the server as ClientTLS does (the
// token's CA pin, or ca) before the secret is sent, and checking that the
// CA handed over is that same CA and matches its key.
func FetchBootstrap(ctx context.Context, server, token string, ca []byte) (Bootstrap, error) {
	var b Bootstrap
	tok, err := call(ctx, http.MethodGet, server, BootstrapPath, token, ca, nil, &b)
	if err != nil {
		return Bootstrap{}, err
	}
	_, certs, err := pool([]byte(b.CACert))
	if err != nil {
		return Bootstrap{}, fmt.Errorf("join: the CA from %s: %w", server, err)
	}
	pin := tok.CAHash
	if pin == nil { // a bare secret: the CA given is the reference
		_, given, err := pool(ca)
		if err != nil {
			return Bootstrap{}, err
		}
		pin = CAHash(given[0].Raw)
	}
	if !holdsHash(certs, pin) {
		return Bootstrap{}, fmt.Errorf("join: %s sent a CA other than the token's: %w", server, ErrCAMismatch)
	}
	if _, err := tls.X509KeyPair([]byte(b.CACert), []byte(b.CAKey)); err != nil {
		return Bootstrap{}, fmt.Errorf("join: the CA key from %s does not match its certificate: %w", server, err)
	}
	if b.ClusterPodCIDR == "" || b.ServiceCIDR == "" || b.ClusterDomain == "" {
		return Bootstrap{}, fmt.Errorf("join: %s sent incomplete bootstrap data (ranges %q %q, domain %q)",
			server, b.ClusterPodCIDR, b.ServiceCIDR, b.ClusterDomain)
	}
	return b, nil
}

// CADER is the DER bytes of the first certificate in pemCA.
func CADER(pemCA []byte) ([]byte, error) {
	blk, _ := pem.Decode(pemCA)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("join: no PEM certificate")
	}
	return blk.Bytes, nil
}

// AddVoter asks the server at server to make id (reachable for raft at
// addr) a voter.
func AddVoter(ctx context.Context, server, token string, ca []byte, id, addr string) error {
	_, err := call(ctx, http.MethodPost, server, MembersPath, token, ca, Member{ID: id, Addr: addr, Voter: true}, nil)
	return err
}

// Members asks the server at server for the raft configuration.
func Members(ctx context.Context, server, token string, ca []byte) ([]Member, error) {
	var ms []Member
	_, err := call(ctx, http.MethodGet, server, MembersPath, token, ca, nil, &ms)
	return ms, err
}

// RemoveMember asks the server at server to remove id from the cluster.
func RemoveMember(ctx context.Context, server, token string, ca []byte, id string) error {
	_, err := call(ctx, http.MethodDelete, server, MembersPath+"/"+url.PathEscape(id), token, ca, nil, nil)
	return err
}

// call makes one request to a server's API port with the token's secret,
// JSON in (in, when not nil) and out (into out, when not nil).
func call(ctx context.Context, method, server, path, token string, ca []byte, in, out any) (Token, error) {
	tok, err := ParseToken(token)
	if err != nil {
		return Token{}, err
	}
	client, err := HTTPClient(tok, ca)
	if err != nil {
		return Token{}, err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return Token{}, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+server+path, body)
	if err != nil {
		return Token{}, fmt.Errorf("join: server address %q: %w", server, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Secret)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return Token{}, fmt.Errorf("join: reach the server at %s: %w", server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20)) // bootstrap data is a few KiB
	if err != nil {
		return Token{}, fmt.Errorf("join: %s %s: %w", method, path, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return Token{}, fmt.Errorf("join: %s: %w", server, ErrRefused)
	case resp.StatusCode/100 != 2:
		var st struct {
			Message string `json:"message"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &st) == nil && st.Message != "" {
			msg = st.Message
		}
		return Token{}, fmt.Errorf("join: %s %s%s answered %s: %s", method, server, path, resp.Status, msg)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return Token{}, fmt.Errorf("join: %s %s%s: %w", method, server, path, err)
		}
	}
	return tok, nil
}
