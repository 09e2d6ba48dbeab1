package serviceaccount

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/skiffhq/skiff/internal/atomicfile"
)

// KeyFile is the signing key's file name in the server's PKI directory
// (kubeadm's sa.key): every server of a cluster holds the same one, copied
// when it joins, so a token minted by one server is good on all.
const KeyFile = "sa.key"

// LoadOrCreateKey reads the PEM ECDSA P-256 key at path, creating it
// (0600, by write-and-rename) when it does not exist.
func LoadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("serviceaccount: generate signing key: %w", err)
		}
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("serviceaccount: encode signing key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("serviceaccount: %w", err)
		}
		if err := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})); err != nil {
			return nil, fmt.Errorf("serviceaccount: write signing key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("serviceaccount: read signing key: %w", err)
	}
	return ParseKey(b)
}

// ParseKey decodes a PEM ECDSA P-256 private key ("EC PRIVATE KEY" or
// PKCS#8 "PRIVATE KEY").
func ParseKey(b []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("serviceaccount: signing key: no PEM block")
	}
	var key *ecdsa.PrivateKey
	switch block.Type {
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("serviceaccount: signing key: %w", err)
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("serviceaccount: signing key: %w", err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("serviceaccount: signing key is %T, want ECDSA P-256", k)
		}
		key = ek
	default:
		return nil, fmt.Errorf("serviceaccount: signing key: unexpected PEM block %q", block.Type)
	}
	if key.Curve != elliptic.P256() {
		return nil, errors.New("serviceaccount: signing key must be ECDSA P-256")
	}
	return key, nil
}
