// Package pki keeps the API server's key material in the data directory's
// pki/: the cluster CA and the serving certificate, the key ring that
// encrypts Secrets at rest, and the admin kubeconfig that carries the CA.
// It knows files and keys, not the API: the server decides what to encrypt
// and when to rotate.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/skiffhq/skiff/internal/atomicfile"
)

// PKI is the cluster's certificate authority and the API server's serving
// certificate, kept under a directory so restarts reuse them (a new CA would
// invalidate every kubeconfig handed out).
type PKI struct {
	CAPEM   []byte // the CA certificate, for kubeconfigs and clients
	CA      *x509.Certificate
	Serving tls.Certificate
}

// LoadOrCreate reads dir/ca.{crt,key} and dir/apiserver.{crt,key},
// creating what is missing. The serving certificate is made again when it
// does not cover every name in hosts (the listen address changed) or is
// within 30 days of expiry.
func LoadOrCreate(dir string, hosts []string) (*PKI, error) {
	caCert, caKey, err := loadOrCreateCA(dir)
	if err != nil {
		return nil, err
	}
	cert, key, err := loadPair(filepath.Join(dir, "apiserver"))
	if err == nil && (!covers(cert, hosts) || time.Until(cert.NotAfter) < 30*24*time.Hour ||
		cert.CheckSignatureFrom(caCert) != nil) {
		err = os.ErrNotExist
	}
	if errors.Is(err, os.ErrNotExist) {
		cert, key, err = newServing(filepath.Join(dir, "apiserver"), caCert, caKey, hosts)
	}
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	return &PKI{
		CAPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}),
		CA:      caCert,
		Serving: tls.Certificate{Certificate: [][]byte{cert.Raw, caCert.Raw}, PrivateKey: key, Leaf: cert},
	}, nil
}

func covers(c *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(c.DNSNames, h) {
			return false
		}
	}
	return true
}

func newCA(base string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: "skiff-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	return issue(base, tmpl, nil, nil)
}

func newServing(base string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: "skiff-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	addHosts(tmpl, hosts)
	return issue(base, tmpl, ca, caKey)
}

// issue signs tmpl (self-signed when parent is nil) with a new P-256 key and
// writes base.crt and base.key (0600), key first, each by write-and-rename.
func issue(base string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign %s: %w", base, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	if err := atomicfile.Write(base+".key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})); err != nil {
		return nil, nil, err
	}
	if err := atomicfile.Write(base+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func loadPair(base string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(base+".crt", base+".key")
	if err != nil {
		if _, statErr := os.Stat(base + ".crt"); errors.Is(statErr, os.ErrNotExist) {
			return nil, nil, os.ErrNotExist
		}
		return nil, nil, fmt.Errorf("load %s: %w", base, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("load %s: key is %T, want ECDSA", base, pair.PrivateKey)
	}
	return pair.Leaf, key, nil
}

// LoadOrCreateServingCert reads dir/name.{crt,key}, a serving certificate
// for another listener of this server (the bus), issued by the cluster CA in
// dir and covering hosts (IP addresses or DNS names), and makes it again when
// it is missing, does not cover hosts, is within 30 days of expiry or was not
// issued by the CA. The CA is made if it is missing. It returns the
// certificate with its chain, and the CA certificate as PEM for clients.
func LoadOrCreateServingCert(dir, name string, hosts []string) (tls.Certificate, []byte, error) {
	caCert, caKey, err := loadOrCreateCA(dir)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	base := filepath.Join(dir, name)
	cert, key, err := loadPair(base)
	if err == nil && (!covers(cert, hosts) || time.Until(cert.NotAfter) < 30*24*time.Hour ||
		cert.CheckSignatureFrom(caCert) != nil) {
		err = os.ErrNotExist
	}
	if errors.Is(err, os.ErrNotExist) {
		tmpl := &x509.Certificate{
			Subject:   pkix.Name{CommonName: "skiff-" + name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		addHosts(tmpl, hosts)
		cert, key, err = issue(base, tmpl, caCert, caKey)
	}
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("%s serving certificate: %w", name, err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw, caCert.Raw}, PrivateKey: key, Leaf: cert},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}), nil
}

// loadOrCreateCA reads the cluster CA in dir, making dir and the CA the
// first time.
func loadOrCreateCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("pki dir: %w", err)
	}
	caCert, caKey, err := loadPair(filepath.Join(dir, "ca"))
	if errors.Is(err, os.ErrNotExist) {
		caCert, caKey, err = newCA(filepath.Join(dir, "ca"))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cluster CA: %w", err)
	}
	return caCert, caKey, nil
}

// addHosts names hosts (IP addresses or DNS names) in tmpl's SANs.
func addHosts(tmpl *x509.Certificate, hosts []string) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
}

// LoadOrCreateCA returns the cluster CA certificate in dir, making dir and
// the CA the first time: what a server needs before its API starts (the
// join token pins the CA's hash).
func LoadOrCreateCA(dir string) (*x509.Certificate, error) {
	c, _, err := loadOrCreateCA(dir)
	return c, err
}
