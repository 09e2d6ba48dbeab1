package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// UserCert is a user's client certificate and its private key (PEM).
type UserCert struct {
	CertPEM, KeyPEM []byte
	NotAfter        time.Time
}

// IssueUserCert signs a client certificate for a user with the cluster CA
// in dir: CN the user name, O the groups, which the API server reads as
// Kubernetes does (x509 client-certificate authentication). The key is
// made here and handed back: whoever runs this holds the CA key anyway.
// The CA must exist already: a user certificate from a CA made on the spot
// would be good for no cluster.
func IssueUserCert(dir, name string, groups []string, validity time.Duration) (UserCert, error) {
	if name == "" {
		return UserCert{}, errors.New("user certificate: the user name is empty")
	}
	if validity <= 0 {
		return UserCert{}, fmt.Errorf("user certificate: validity %v is not positive", validity)
	}
	for _, f := range []string{"ca.crt", "ca.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return UserCert{}, fmt.Errorf("user certificate: no cluster CA in %s (has a server run with this data directory?): %w", dir, err)
		}
	}
	caCert, caKey, err := loadOrCreateCA(dir)
	if err != nil {
		return UserCert{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return UserCert{}, err
	}
	notAfter := time.Now().Add(validity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter // a certificate outliving its CA verifies nowhere
	}
	der, err := signClientCert(caCert, caKey, &key.PublicKey, pkix.Name{CommonName: name, Organization: groups},
		time.Now().Add(-5*time.Minute), notAfter)
	if err != nil {
		return UserCert{}, fmt.Errorf("user certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return UserCert{}, err
	}
	return UserCert{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), NotAfter: notAfter}, nil
}

// UserKubeconfig is a kubeconfig for user at serverURL that authenticates
// with the client certificate c (no token).
func UserKubeconfig(serverURL string, caPEM []byte, user string, c UserCert) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["skiff"] = &clientcmdapi.Cluster{Server: serverURL, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: c.CertPEM, ClientKeyData: c.KeyPEM}
	ctx := user + "@skiff"
	cfg.Contexts[ctx] = &clientcmdapi.Context{Cluster: "skiff", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = ctx
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return b, nil
}
