package serviceaccount

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// The tokens are JWS compact serialisations signed with ES256 (ECDSA
// P-256, SHA-256), which kube-apiserver accepts for service account keys
// beside RS256. The encoding is done here with crypto/ecdsa rather than a
// JOSE library: one algorithm, one key type, a few dozen lines
// (docs/rationale.md).

const algES256 = "ES256"

// maxTokenLen bounds what is parsed: a bound token is under 2 KiB; the
// bound keeps a hostile header from costing more than a read.
const maxTokenLen = 16 << 10

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
	Typ string `json:"typ,omitempty"`
}

var b64 = base64.RawURLEncoding

// keyID is the key's id as Kubernetes computes it: the unpadded base64url
// SHA-256 of the public key's PKIX DER, so the "kid" of our tokens and
// JWKS means the same as kube-apiserver's.
func keyID(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("serviceaccount: marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return b64.EncodeToString(sum[:]), nil
}

// sign returns the compact JWS of claims.
func sign(key *ecdsa.PrivateKey, kid string, claims any) (string, error) {
	h, err := json.Marshal(header{Alg: algES256, Kid: kid})
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("serviceaccount: encode claims: %w", err)
	}
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		return "", fmt.Errorf("serviceaccount: sign: %w", err)
	}
	// JWS ES256 signatures are R || S, each 32 bytes big-endian (RFC 7518 §3.4).
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + b64.EncodeToString(sig), nil
}

// errNotJWT: the token is not a compact JWS at all (another
// authenticator's token); errors other than this one mean it is a JWS but
// not a valid one.
var errNotJWT = errors.New("not a JWT")

// parse splits a compact JWS and decodes its header and payload, without
// checking the signature.
func parse(token string) (header, []byte, string, []byte, error) {
	var h header
	if len(token) > maxTokenLen || strings.Count(token, ".") != 2 {
		return h, nil, "", nil, errNotJWT
	}
	parts := strings.SplitN(token, ".", 3)
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return h, nil, "", nil, errNotJWT
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return h, nil, "", nil, errNotJWT
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return h, nil, "", nil, fmt.Errorf("payload: %w", err)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return h, nil, "", nil, fmt.Errorf("signature: %w", err)
	}
	return h, payload, parts[0] + "." + parts[1], sig, nil
}

// verify checks an ES256 signature over signing.
func verify(pub *ecdsa.PublicKey, signing string, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	sum := sha256.Sum256([]byte(signing))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub, sum[:], r, s)
}

// JWK is one public key in a JSON Web Key Set (RFC 7517), as
// /openid/v1/jwks serves it.
type JWK struct {
	Use string `json:"use"`
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Crv string `json:"crv"`
	Alg string `json:"alg"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func publicJWK(pub *ecdsa.PublicKey, kid string) (JWK, error) {
	if pub.Curve != elliptic.P256() {
		return JWK{}, errors.New("serviceaccount: only P-256 keys are supported")
	}
	ecdh, err := pub.ECDH()
	if err != nil {
		return JWK{}, err
	}
	raw := ecdh.Bytes() // 0x04 || X || Y
	return JWK{Use: "sig", Kty: "EC", Kid: kid, Crv: "P-256", Alg: algES256,
		X: b64.EncodeToString(raw[1:33]), Y: b64.EncodeToString(raw[33:65])}, nil
}

var _ crypto.PublicKey = (*ecdsa.PublicKey)(nil)
