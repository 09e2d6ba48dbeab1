// Package nodeauth gives each node a bus identity of its own: a credential
// made from the node's name under a key every server holds (see
// pki.NodeCredentialKey), so that any server checks any node's credential
// without shared state, and the bus can hold each connection to its own
// node's subjects. Servers issue and check credentials (Issuer); a node
// keeps its own in its data directory (Identity).
package nodeauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiffhq/skiff/internal/atomicfile"
)

// Errors, each saying what the caller may conclude.
var (
	// ErrBadCredential: the credential is not the node's (wrong node,
	// another cluster's key, or mangled). Nothing about the node is known.
	ErrBadCredential = errors.New("nodeauth: the credential is not this node's")
	// ErrNoIdentity: the directory holds no node identity yet; the node has
	// to join (ask a server for one) first.
	ErrNoIdentity = errors.New("nodeauth: no node identity in the data directory")
)

// credentialPrefix marks a skiff node credential and its scheme's version,
// so a later scheme can be told apart and a token pasted in its place is
// refused at a glance.
const credentialPrefix = "sknc1_"

// Issuer makes and checks node credentials with one key. Safe for
// concurrent use.
type Issuer struct {
	key []byte
}

// NewIssuer is an issuer with key (at least 32 bytes).
func NewIssuer(key []byte) (*Issuer, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("nodeauth: key of %d bytes, want at least 32", len(key))
	}
	return &Issuer{key: append([]byte(nil), key...)}, nil
}

// Credential is node's credential: HMAC-SHA256 of the node name under the
// key. The same node always gets the same credential from any server with
// the same key.
func (i *Issuer) Credential(node string) string {
	m := hmac.New(sha256.New, i.key)
	m.Write([]byte("node\x00" + node))
	return credentialPrefix + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Verify checks that credential is node's, in constant time; the error
// wraps ErrBadCredential.
func (i *Issuer) Verify(node, credential string) error {
	if node == "" || !strings.HasPrefix(credential, credentialPrefix) ||
		!hmac.Equal([]byte(credential), []byte(i.Credential(node))) {
		return fmt.Errorf("%w (node %q)", ErrBadCredential, node)
	}
	return nil
}

// Identity is what a node keeps of its own identity in its data
// directory: its bus credential and, when the server issued one, its
// client certificate (for the API's node authorizer).
type Identity struct {
	Node       string
	Credential string
	// CertPEM is the node's client certificate (CN system:node:<node>,
	// O system:nodes), for the key in the directory's node.key; may be
	// empty.
	CertPEM []byte
}

// The files of an identity in a node's directory, each 0600.
const (
	nodeFile       = "node-name"
	credentialFile = "bus-credential"
	keyFile        = "node.key"
	certFile       = "node.crt"
)

// Load reads the identity kept in dir; ErrNoIdentity when there is none.
func Load(dir string) (Identity, error) {
	name, err := os.ReadFile(filepath.Join(dir, nodeFile))
	if errors.Is(err, os.ErrNotExist) {
		return Identity{}, ErrNoIdentity
	}
	if err != nil {
		return Identity{}, fmt.Errorf("nodeauth: %w", err)
	}
	cred, err := os.ReadFile(filepath.Join(dir, credentialFile))
	if errors.Is(err, os.ErrNotExist) {
		return Identity{}, ErrNoIdentity
	}
	if err != nil {
		return Identity{}, fmt.Errorf("nodeauth: %w", err)
	}
	id := Identity{Node: strings.TrimSpace(string(name)), Credential: strings.TrimSpace(string(cred))}
	if id.CertPEM, err = os.ReadFile(filepath.Join(dir, certFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Identity{}, fmt.Errorf("nodeauth: %w", err)
	}
	return id, nil
}

// Save keeps id in dir (made 0700 if missing); each file is written whole
// (write and rename), the credential last, so Load never sees a
// half-written identity.
func Save(dir string, id Identity) error {
	if id.Node == "" || id.Credential == "" {
		return errors.New("nodeauth: save: node and credential are required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("nodeauth: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, nodeFile), []byte(id.Node+"\n")); err != nil {
		return fmt.Errorf("nodeauth: %w", err)
	}
	if len(id.CertPEM) > 0 {
		if err := atomicfile.Write(filepath.Join(dir, certFile), id.CertPEM); err != nil {
			return fmt.Errorf("nodeauth: %w", err)
		}
	}
	if err := atomicfile.Write(filepath.Join(dir, credentialFile), []byte(id.Credential+"\n")); err != nil {
		return fmt.Errorf("nodeauth: %w", err)
	}
	return nil
}

// CertificateRequest makes the node's private key in dir (node.key, P-256,
// kept if it exists) and returns a PEM certificate request for node over
// it, for a server to sign (pki.IssueNodeCert). The key never leaves dir.
func CertificateRequest(dir, node string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("nodeauth: %w", err)
	}
	path := filepath.Join(dir, keyFile)
	var key *ecdsa.PrivateKey
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		block, _ := pem.Decode(b)
		if block == nil {
			return nil, fmt.Errorf("nodeauth: %s holds no PEM key", path)
		}
		if key, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("nodeauth: %s: %w", path, err)
		}
	case errors.Is(err, os.ErrNotExist):
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, fmt.Errorf("nodeauth: %w", err)
		}
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("nodeauth: %w", err)
		}
		if err := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})); err != nil {
			return nil, fmt.Errorf("nodeauth: %w", err)
		}
	default:
		return nil, fmt.Errorf("nodeauth: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}}}, key)
	if err != nil {
		return nil, fmt.Errorf("nodeauth: certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}
