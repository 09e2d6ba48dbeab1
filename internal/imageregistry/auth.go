package imageregistry

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// Authenticate lets a request through to next only when it carries token,
// either as "Authorization: Bearer <token>" (what client-go style
// credentials and go-containerregistry's authn.Bearer send) or as the
// password of Basic auth with any user name (what docker login, crane auth
// login and oras login send). Anything else answers 401 UNAUTHORIZED with a
// Basic challenge, which is what makes OCI clients retry with their
// credentials. An empty token refuses every request: a registry on a network
// port is never open.
func Authenticate(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" && authorized(r, token) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("WWW-Authenticate", `Basic realm="skiff"`)
		h.Set("Docker-Distribution-API-Version", "registry/2.0")
		writeError(w, newError(http.StatusUnauthorized, codeUnauthorized,
			"authentication required: the cluster token as a Bearer token, or as the password of Basic auth"))
	})
}

func authorized(r *http.Request, token string) bool {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(h[7:])), []byte(token)) == 1
	}
	if _, pw, ok := r.BasicAuth(); ok {
		return subtle.ConstantTimeCompare([]byte(pw), []byte(token)) == 1
	}
	return false
}
