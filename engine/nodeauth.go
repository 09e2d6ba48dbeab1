package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/apiserver/pki"
	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/join"
	"github.com/skiffhq/skiff/internal/nodeauth"
)

// identitySubdir is where a node keeps its own identity, under its agent
// directory: bus credential, client key and certificate.
const identitySubdir = "identity"

// nodeAuthority issues and checks nodes' own identities on a server: bus
// credentials (nodeauth) and client certificates from the cluster CA.
type nodeAuthority struct {
	pkiDir string
	issuer *nodeauth.Issuer
	// client reads Nodes for the join endpoint; set once the API runs
	// (startNodes), nil before: the endpoint answers 503 until then.
	client atomic.Pointer[kubernetes.Interface]
}

// startNodeAuthority loads the node-credential key (derived from the
// cluster CA's key in DataDir/pki, so every server holding the CA checks
// any node's credential).
func (e *Engine) startNodeAuthority() error {
	dir := filepath.Join(e.cfg.DataDir, pkiSubdir)
	key, err := pki.NodeCredentialKey(dir)
	if err != nil {
		return fmt.Errorf("node credentials: %w", err)
	}
	issuer, err := nodeauth.NewIssuer(key)
	if err != nil {
		return err
	}
	e.nodeAuth = &nodeAuthority{pkiDir: dir, issuer: issuer}
	return nil
}

func (a *nodeAuthority) setClient(cs kubernetes.Interface) { a.client.Store(&cs) }

// authenticate is the bus's bus.NodeAuthenticator: a node connects as
// itself and gets its own node's subjects.
func (a *nodeAuthority) authenticate(node, credential string) (*bus.Permissions, error) {
	if err := a.issuer.Verify(node, credential); err != nil {
		return nil, err
	}
	return nodePermissions(node)
}

// connectOwnNode is an in-process bus connection as this server's own
// node: its agent and network run under the same rules as a worker's.
func (e *Engine) connectOwnNode(ctx context.Context, name string) (*bus.Conn, error) {
	return e.bus.ConnectNodeAs(ctx, name, e.cfg.NodeName, e.nodeAuth.issuer.Credential(e.cfg.NodeName))
}

// credentialHandler answers join.CredentialPath (behind the cluster token):
// a node's bus credential and, for a CSR, its client certificate. As k3s
// does with its node passwords, a node that has joined before (its Node
// exists) gets its identity again only by presenting its current
// credential: the cluster token, which every joining node holds, does not
// get anyone another node's identity. Delete the Node to re-join a node
// that lost its data directory.
func (a *nodeAuthority) credentialHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeStatusErr(w, apierrors.NewMethodNotSupported(metav1.SchemeGroupVersion.WithResource("nodecredentials").GroupResource(), r.Method))
			return
		}
		var req join.CredentialRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			writeStatusErr(w, apierrors.NewBadRequest(fmt.Sprintf("node credential request: %v", err)))
			return
		}
		if err := validNodeName(req.Node); err != nil {
			writeStatusErr(w, apierrors.NewBadRequest(err.Error()))
			return
		}
		cs := a.client.Load()
		if cs == nil {
			writeStatusErr(w, apierrors.NewServiceUnavailable("the server is starting; retry"))
			return
		}
		_, err := (*cs).CoreV1().Nodes().Get(r.Context(), req.Node, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			// A new node: the token is enough.
		case err != nil:
			writeStatusErr(w, apierrors.NewInternalError(fmt.Errorf("node %s: %w", req.Node, err)))
			return
		case a.issuer.Verify(req.Node, req.Credential) != nil:
			writeStatusErr(w, apierrors.NewForbidden(metav1.SchemeGroupVersion.WithResource("nodes").GroupResource(), req.Node,
				errors.New("the node has joined before: present its current credential, or delete the Node to join it anew")))
			return
		}
		resp := join.CredentialResponse{Node: req.Node, Credential: a.issuer.Credential(req.Node)}
		if req.CSR != "" {
			cert, err := pki.IssueNodeCert(a.pkiDir, req.Node, []byte(req.CSR))
			if err != nil {
				writeStatusErr(w, apierrors.NewBadRequest(err.Error()))
				return
			}
			resp.Certificate = string(cert)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	})
}

// writeStatusErr writes err as a Kubernetes Status with its code.
func writeStatusErr(w http.ResponseWriter, err *apierrors.StatusError) {
	st := err.Status()
	writeStatus(w, int(st.Code), st.Reason, st.Message)
}

// workerIdentity is the worker's own identity: the one kept in its data
// directory, or else a new one from the server (the join endpoint, with the
// token; ca checks the server), kept for the next start.
func workerIdentity(ctx context.Context, cfg WorkerConfig, server string, ca []byte, dir string) (nodeauth.Identity, error) {
	idDir := filepath.Join(dir, identitySubdir)
	id, err := nodeauth.Load(idDir)
	if err == nil {
		if id.Node != cfg.NodeName {
			return id, fmt.Errorf("worker: %s holds the identity of node %q, not %q", idDir, id.Node, cfg.NodeName)
		}
		return id, nil
	}
	if !errors.Is(err, nodeauth.ErrNoIdentity) {
		return id, fmt.Errorf("worker: %w", err)
	}
	csr, err := nodeauth.CertificateRequest(idDir, cfg.NodeName)
	if err != nil {
		return id, fmt.Errorf("worker: %w", err)
	}
	resp, err := join.RequestCredential(ctx, server, cfg.Token, ca, join.CredentialRequest{Node: cfg.NodeName, CSR: string(csr)})
	if err != nil {
		return id, fmt.Errorf("worker: %w", err)
	}
	id = nodeauth.Identity{Node: cfg.NodeName, Credential: resp.Credential, CertPEM: []byte(resp.Certificate)}
	if err := nodeauth.Save(idDir, id); err != nil {
		return id, fmt.Errorf("worker: %w", err)
	}
	return id, nil
}
