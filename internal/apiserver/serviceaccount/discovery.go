package serviceaccount

import (
	"encoding/json"
	"net/http"
)

// Paths of the OIDC discovery documents, as kube-apiserver serves them
// (ServiceAccountIssuerDiscovery): with them a party outside the cluster
// verifies tokens without calling TokenReview.
const (
	OpenIDConfigurationPath = "/.well-known/openid-configuration"
	JWKSPath                = "/openid/v1/jwks"
)

type openIDConfiguration struct {
	Issuer        string   `json:"issuer"`
	JWKSURI       string   `json:"jwks_uri"`
	ResponseTypes []string `json:"response_types_supported"`
	SubjectTypes  []string `json:"subject_types_supported"`
	SigningAlgs   []string `json:"id_token_signing_alg_values_supported"`
}

// JWKS is the public half of the signing key as a JSON Web Key Set.
func (t *Tokens) JWKS() ([]byte, error) {
	k, err := publicJWK(&t.cfg.Key.PublicKey, t.kid)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Keys []JWK `json:"keys"`
	}{[]JWK{k}})
}

// OpenIDConfiguration is the discovery document: the JWKS is found at
// the issuer's URL, as kube-apiserver announces it unless told otherwise.
func (t *Tokens) OpenIDConfiguration() ([]byte, error) {
	return json.Marshal(openIDConfiguration{Issuer: t.cfg.Issuer, JWKSURI: t.cfg.Issuer + JWKSPath,
		ResponseTypes: []string{"id_token"}, SubjectTypes: []string{"public"}, SigningAlgs: []string{algES256}})
}

// DiscoveryHandler serves OpenIDConfigurationPath and JWKSPath (GET only;
// the caller decides who may read them). Kubernetes sends them as
// application/json and application/jwk-set+json, cacheable for an hour.
func (t *Tokens) DiscoveryHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var body []byte
		var err error
		ctype := "application/json"
		switch r.URL.Path {
		case OpenIDConfigurationPath:
			body, err = t.OpenIDConfiguration()
		case JWKSPath:
			body, err = t.JWKS()
			ctype = "application/jwk-set+json"
		default:
			http.NotFound(w, r)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(body)
	})
}
