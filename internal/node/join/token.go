package join

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// tokenPrefix starts a token that pins the cluster CA, as k3s's does: the
// form is "K10" + the hex SHA-256 of the CA certificate (DER) + "::server:"
// + the cluster secret. The secret alone (the old form) is still a token,
// but one that pins nothing. See docs/rationale.md.
const (
	tokenPrefix = "K10"
	tokenUser   = "server"
)

// Token is a parsed cluster token.
type Token struct {
	// CAHash is the SHA-256 of the cluster CA certificate's DER bytes
	// (what `openssl x509 -outform DER | sha256sum` prints); nil for a
	// bare secret.
	CAHash []byte
	// Secret is the cluster secret: the API's bearer token and the bus's
	// node password.
	Secret string
}

var (
	// ErrNoCAPin: the token is a bare secret and no CA was given, so
	// nothing says which server is the cluster's: a node refuses to trust a
	// certificate on first use.
	ErrNoCAPin = errors.New("the token pins no cluster CA: use the full token from the server's DATA-DIR/token (K10…::server:…) or give the cluster CA (--ca-file)")
	// ErrCAMismatch: the server's certificate (or the CA given) is not
	// from the CA the token names: another cluster, or someone in between.
	ErrCAMismatch = errors.New("the server's certificate does not chain to the cluster CA the token names")
)

// CAHash is the SHA-256 of a CA certificate's DER bytes, the pin a token
// carries.
func CAHash(caDER []byte) []byte {
	h := sha256.Sum256(caDER)
	return h[:]
}

// NewToken is the token that pins the CA whose certificate is caDER.
func NewToken(caDER []byte, secret string) Token {
	return Token{CAHash: CAHash(caDER), Secret: secret}
}

// String is the token's text: the pinned form, or the bare secret.
func (t Token) String() string {
	if t.CAHash == nil {
		return t.Secret
	}
	return tokenPrefix + hex.EncodeToString(t.CAHash) + "::" + tokenUser + ":" + t.Secret
}

// ParseToken reads a token in either form. Surrounding white space (a
// token file's newline) is ignored.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Token{}, errors.New("join: empty token")
	}
	hashPart, creds, pinned := strings.Cut(s, "::")
	if !pinned {
		return Token{Secret: s}, nil
	}
	if !strings.HasPrefix(hashPart, tokenPrefix) {
		return Token{}, fmt.Errorf("join: token: want %s<sha256 of the CA>::%s:<secret>", tokenPrefix, tokenUser)
	}
	hash, err := hex.DecodeString(strings.TrimPrefix(hashPart, tokenPrefix))
	if err != nil || len(hash) != sha256.Size {
		return Token{}, errors.New("join: token: the CA hash is not a hex SHA-256")
	}
	user, secret, ok := strings.Cut(creds, ":")
	if !ok || user != tokenUser || secret == "" {
		return Token{}, fmt.Errorf("join: token: want %s<sha256 of the CA>::%s:<secret>", tokenPrefix, tokenUser)
	}
	return Token{CAHash: hash, Secret: secret}, nil
}

// ClientTLS is how a node checks a server's certificate: against ca (PEM)
// when given, which must then hold the CA the token pins; otherwise against
// the CA the token pins, which the server sends in its chain (skiff's
// serving certificates carry the CA after the leaf). A bare secret without
// a CA is refused (ErrNoCAPin): nothing is trusted on first use.
//
// With a pinned CA the dialled name is not checked: the CA is the
// cluster's own and signs only its servers, so "a certificate from this
// CA" identifies the cluster, behind NAT or on any address (as
// BusServerName does for the bus).
func ClientTLS(tok Token, ca []byte) (*tls.Config, error) {
	if len(ca) > 0 {
		p, certs, err := pool(ca)
		if err != nil {
			return nil, err
		}
		if tok.CAHash != nil && !holdsHash(certs, tok.CAHash) {
			return nil, fmt.Errorf("join: the CA given is not the one the token pins (sha256 %x): %w", tok.CAHash, ErrCAMismatch)
		}
		return &tls.Config{RootCAs: p, MinVersion: tls.VersionTLS12}, nil
	}
	if tok.CAHash == nil {
		return nil, fmt.Errorf("join: %w", ErrNoCAPin)
	}
	pin := tok.CAHash
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The default check needs roots we do not have before the
		// handshake; VerifyConnection does it with the pinned CA.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPinned(cs.PeerCertificates, pin)
		},
	}, nil
}

// verifyPinned checks that the presented chain holds the CA whose hash is
// pin and that the leaf is a serving certificate it issued.
func verifyPinned(chain []*x509.Certificate, pin []byte) error {
	if len(chain) == 0 {
		return fmt.Errorf("join: the server sent no certificate: %w", ErrCAMismatch)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	found := false
	for _, c := range chain[1:] {
		if subtle.ConstantTimeCompare(CAHash(c.Raw), pin) == 1 {
			roots.AddCert(c)
			found = true
		} else {
			inter.AddCert(c)
		}
	}
	if !found {
		return fmt.Errorf("join: no certificate the server sent has the token's CA hash (sha256 %x): %w", pin, ErrCAMismatch)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("join: %w: %v", ErrCAMismatch, err)
	}
	return nil
}

// HTTPClient is an HTTPS client for a cluster's API that checks the
// server as ClientTLS says, for requests a joining node (or server) makes
// with tok.Secret as the bearer token.
func HTTPClient(tok Token, ca []byte) (*http.Client, error) {
	tlsConf, err := ClientTLS(tok, ca)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}, nil
}

func holdsHash(certs []*x509.Certificate, pin []byte) bool {
	for _, c := range certs {
		if bytes.Equal(CAHash(c.Raw), pin) {
			return true
		}
	}
	return false
}

// pool parses ca (PEM) into a pool and its certificates.
func pool(ca []byte) (*x509.CertPool, []*x509.Certificate, error) {
	p := x509.NewCertPool()
	var certs []*x509.Certificate
	for rest := ca; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("join: the CA: %w", err)
		}
		p.AddCert(c)
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, nil, errors.New("join: the CA holds no PEM certificate")
	}
	return p, certs, nil
}
