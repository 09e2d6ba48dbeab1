package apiserver

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apiserver/pkg/authentication/user"
)

// The identities every request resolves to. Kubernetes' names are kept so
// RBAC bindings written for Kubernetes mean the same here.
var (
	// AdminUser is the holder of the cluster token (the first kubeconfig):
	// in system:masters, which Kubernetes' cluster-admin binding grants
	// everything.
	AdminUser = &user.DefaultInfo{Name: "system:admin", Groups: []string{user.SystemPrivilegedGroup, user.AllAuthenticated}}
	// anonymousUser is who sends no credentials at all.
	anonymousUser = &user.DefaultInfo{Name: user.Anonymous, Groups: []string{user.AllUnauthenticated}}
)

// TokenAuthenticator resolves a bearer token to a user. ok false means the
// token is not one this authenticator knows (the next one is asked); an
// error means it is one of its kind but invalid (expired, bad signature,
// revoked), and the request is refused.
type TokenAuthenticator interface {
	AuthenticateToken(ctx context.Context, token string) (u user.Info, ok bool, err error)
}

type userKey struct{}

// WithUser returns ctx carrying u as the authenticated caller. A request
// whose context already carries a user is not authenticated again: only
// code in this process can set a context value, so the in-process transport
// (InProcessTransportAs) uses it to run the engine's own components under
// their own identities without minting credentials for them.
func WithUser(ctx context.Context, u user.Info) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFrom returns the caller a request was authenticated as.
func UserFrom(ctx context.Context) (user.Info, bool) {
	u, ok := ctx.Value(userKey{}).(user.Info)
	return u, ok && u != nil
}

// authenticate finds who is calling, in Kubernetes' order: a user already
// in the context (in-process), a client certificate signed by the cluster
// CA (CN the user, O the groups), then a bearer token (the cluster token,
// then each TokenAuthenticator). A request with no credentials is
// system:anonymous, which authorization then limits to the public paths;
// a request with bad credentials is 401 even on a public path, as in
// Kubernetes.
func (s *Server) authenticate(next http.Handler) http.Handler {
	want := []byte("Bearer " + s.cfg.Token)
	wantJoin := []byte("Bearer " + s.cfg.JoinToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := UserFrom(r.Context()); ok {
			next.ServeHTTP(w, r)
			return
		}
		u, err := s.authenticateRequest(r, want, wantJoin)
		if err != nil {
			writeError(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithUser(r.Context(), u)))
	})
}

func (s *Server) authenticateRequest(r *http.Request, want, wantJoin []byte) (user.Info, error) {
	if u, ok := s.certificateUser(r); ok {
		return u, nil
	}
	header := r.Header.Get("Authorization")
	if header == "" {
		return anonymousUser, nil
	}
	got := []byte(header)
	if subtle.ConstantTimeCompare(got, want) == 1 ||
		s.cfg.JoinToken != "" && subtle.ConstantTimeCompare(got, wantJoin) == 1 {
		return AdminUser, nil
	}
	token, isBearer := strings.CutPrefix(header, "Bearer ")
	if isBearer && token != "" {
		for _, a := range s.tokenAuthenticators {
			u, ok, err := a.AuthenticateToken(r.Context(), token)
			if err != nil {
				s.log.Debug("token refused", "err", err)
				return nil, apierrors.NewUnauthorized("Unauthorized")
			}
			if ok {
				return u, nil
			}
		}
	}
	return nil, apierrors.NewUnauthorized("Unauthorized")
}

// certificateUser maps a verified client certificate to a user: the TLS
// layer asks for one and verifies it against the cluster CA when given
// (tls.VerifyClientCertIfGiven), so any peer certificate here chains to the
// CA. The chain is checked again for client-auth use, so the serving
// certificate (signed by the same CA) is not taken as a user.
func (s *Server) certificateUser(r *http.Request) (user.Info, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, false
	}
	leaf := r.TLS.PeerCertificates[0]
	roots := x509.NewCertPool()
	roots.AddCert(s.pki.CA)
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, false
	}
	if leaf.Subject.CommonName == "" {
		return nil, false
	}
	groups := append([]string(nil), leaf.Subject.Organization...)
	groups = append(groups, user.AllAuthenticated)
	return &user.DefaultInfo{Name: leaf.Subject.CommonName, Groups: groups}, true
}
