package join

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// CredentialPath is where a joining node gets its own identity: POST a
// CredentialRequest with the cluster token, get a CredentialResponse.
const CredentialPath = "/skiff/v1/node-credential"

// CredentialRequest asks for a node's identity.
type CredentialRequest struct {
	// Node is the node's name.
	Node string `json:"node"`
	// Credential is the node's current bus credential, when it has one
	// (renewing); a node that has joined before must present it, so that
	// the cluster token alone does not get another node's identity.
	Credential string `json:"credential,omitempty"`
	// CSR is a PEM certificate request over the node's own key; the answer
	// carries the certificate the cluster CA signed for it.
	CSR string `json:"csr,omitempty"`
}

// CredentialResponse is a node's identity.
type CredentialResponse struct {
	Node string `json:"node"`
	// Credential is the node's bus password (its user is the node name).
	Credential string `json:"credential"`
	// Certificate is the node's client certificate (PEM, CN
	// system:node:<node>, O system:nodes), when a CSR was sent.
	Certificate string `json:"certificate,omitempty"`
}

// ErrCredentialRefused: the server would not hand out the node's identity
// (the node joined before and the request did not prove it is that node).
var ErrCredentialRefused = errors.New("the server refused to issue the node's credential")

// RequestCredential asks the server at the API address server ("host:port")
// for req.Node's identity, with the cluster token, checking the server as
// Discover does (ca, PEM, if given; else the CA the token pins).
func RequestCredential(ctx context.Context, server, token string, ca []byte, req CredentialRequest) (CredentialResponse, error) {
	tok, err := ParseToken(token)
	if err != nil {
		return CredentialResponse{}, err
	}
	client, err := HTTPClient(tok, ca)
	if err != nil {
		return CredentialResponse{}, err
	}
	defer client.CloseIdleConnections()
	body, err := json.Marshal(req)
	if err != nil {
		return CredentialResponse{}, fmt.Errorf("join: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+server+CredentialPath, bytes.NewReader(body))
	if err != nil {
		return CredentialResponse{}, fmt.Errorf("join: server address %q: %w", server, err)
	}
	hreq.Header.Set("Authorization", "Bearer "+tok.Secret)
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hreq)
	if err != nil {
		return CredentialResponse{}, fmt.Errorf("join: reach the server at %s: %w", server, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return CredentialResponse{}, fmt.Errorf("join: the server at %s refused the token", server)
	case http.StatusForbidden:
		return CredentialResponse{}, fmt.Errorf("join: node %s: %w: %s", req.Node, ErrCredentialRefused, bytes.TrimSpace(msg))
	default:
		return CredentialResponse{}, fmt.Errorf("join: %s%s answered %s: %s", server, CredentialPath, resp.Status, bytes.TrimSpace(msg))
	}
	var out CredentialResponse
	if err := json.Unmarshal(msg, &out); err != nil {
		return CredentialResponse{}, fmt.Errorf("join: credential from %s: %w", server, err)
	}
	if out.Node != req.Node || out.Credential == "" {
		return CredentialResponse{}, fmt.Errorf("join: %s answered a credential for %q, asked for %q", server, out.Node, req.Node)
	}
	return out, nil
}
