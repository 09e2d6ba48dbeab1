package pki

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// PeerOrganization is the subject organization of every raft peer
// certificate. Peers accept only certificates that carry it: the cluster CA
// signs other certificates too (the API's serving one, and whatever later
// needs one), and none of those may open the store.
const PeerOrganization = "skiff:raft-peers"

// PeerTLS is the mutual-TLS configuration of a server's raft and write
// forwarding, used by both ends of every connection: the server's
// certificate dir/raft-peer.{crt,key}, issued by the cluster CA
// dir/ca.{crt,key} (created when missing, as LoadOrCreate would) to name (the
// node name) and hosts (the addresses peers dial), valid as server and client;
// the CA as the only root on both sides, a client certificate required; and a
// check that the other end's certificate is a raft peer's (PeerOrganization).
// The certificate is issued again when it names another node, misses one of
// hosts, is within 30 days of expiry, or was not signed by the CA.
func PeerTLS(dir, name string, hosts []string) (*tls.Config, error) {
	caCert, caKey, err := loadOrCreateCA(dir)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("raft peer certificate: no node name")
	}
	names := []string{name}
	for _, h := range hosts {
		if h != "" && !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	base := filepath.Join(dir, "raft-peer")
	cert, key, err := loadPair(base)
	if err == nil && (cert.Subject.CommonName != name || !covers(cert, names) ||
		time.Until(cert.NotAfter) < 30*24*time.Hour || cert.CheckSignatureFrom(caCert) != nil) {
		err = os.ErrNotExist
	}
	if errors.Is(err, os.ErrNotExist) {
		tmpl := &x509.Certificate{
			Subject:   pkix.Name{CommonName: name, Organization: []string{PeerOrganization}},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		addHosts(tmpl, names)
		cert, key, err = issue(base, tmpl, caCert, caKey)
	}
	if err != nil {
		return nil, fmt.Errorf("raft peer certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw, caCert.Raw}, PrivateKey: key, Leaf: cert}},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
		// Runs after the chain (and, on the dialling side, the address)
		// has been verified, on both ends.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 ||
				!slices.Contains(cs.PeerCertificates[0].Subject.Organization, PeerOrganization) {
				return errors.New("the peer's certificate is not a raft peer's")
			}
			return nil
		},
	}, nil
}
