package pki

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// nodeCredentialLabel separates the node-credential key from any other use
// of the CA key, and names the scheme's version.
const nodeCredentialLabel = "skiff node bus credential key v1"

// NodeCredentialKey is the key that node credentials are made and checked
// with (see internal/nodeauth), derived from the cluster CA's private key in
// dir (made if missing). Every server holds the CA key, since it issues
// certificates, so every server can check any node's credential without
// shared state, and no further secret has to be copied to a joining
// server. The CA key is not recoverable from it (HMAC-SHA256).
func NodeCredentialKey(dir string) ([]byte, error) {
	_, caKey, err := loadOrCreateCA(dir)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return nil, fmt.Errorf("node credential key: %w", err)
	}
	m := hmac.New(sha256.New, der)
	m.Write([]byte(nodeCredentialLabel))
	return m.Sum(nil), nil
}

// NodeCertValidity is how long a node's client certificate is valid.
const NodeCertValidity = 365 * 24 * time.Hour

// IssueNodeCert signs a node's client certificate with the cluster CA in
// dir, for the public key of csrPEM (a PEM "CERTIFICATE REQUEST" whose
// signature must verify): CN "system:node:<node>", O "system:nodes", as
// Kubernetes' Node authorizer expects a kubelet's identity. Whatever else
// the request asks for is ignored. The private key never leaves the node.
// It returns the certificate as PEM.
func IssueNodeCert(dir, node string, csrPEM []byte) ([]byte, error) {
	if node == "" {
		return nil, errors.New("node certificate: node name is empty")
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("node certificate: no PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("node certificate: request signature: %w", err)
	}
	caCert, caKey, err := loadOrCreateCA(dir)
	if err != nil {
		return nil, err
	}
	der, err := signClientCert(caCert, caKey, csr.PublicKey, pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}},
		time.Now().Add(-time.Hour), time.Now().Add(NodeCertValidity))
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// signClientCert signs a client-authentication certificate for pub with
// the cluster CA: subject CN is the user, O the groups, as the API server
// reads them. Node and user certificates differ only in these arguments.
func signClientCert(ca *x509.Certificate, caKey crypto.Signer, pub any, subject pkix.Name, notBefore, notAfter time.Time) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: subject, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return der, nil
}
