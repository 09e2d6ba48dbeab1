package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/authz"
	"github.com/skiffhq/skiff/internal/authz/bootstrap"
	nodeauthz "github.com/skiffhq/skiff/internal/authz/node"
)

// authzSyncTimeout bounds how long Start waits for the authorizers'
// caches: until they have listed, every request but the admin's would be
// refused.
const authzSyncTimeout = time.Minute

// authorizers is the chain a request is decided by, in Kubernetes' order
// (Node, then RBAC): the first to allow wins; refusal reasons are joined.
type authorizers struct {
	node     *nodeauthz.Authorizer
	rbac     *authz.RBAC
	factory  informers.SharedInformerFactory
	stop     chan struct{}
	stopOnce sync.Once
}

// startAuthorizers builds the RBAC and Node authorizers over informers of
// this server's own API (in-process, as the admin) and waits for their
// first lists. Every server runs its own: each answers requests.
func (s *Server) startAuthorizers(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: "http://skiff.in-process", Transport: s.InProcessTransport(),
		UserAgent: "skiff-authorizer", QPS: -1})
	if err != nil {
		return fmt.Errorf("authorizer client: %w", err)
	}
	f := informers.NewSharedInformerFactory(cs, 0)
	rbac, err := authz.NewRBAC(f)
	if err != nil {
		return err
	}
	node, err := nodeauthz.New(f, bootstrap.NodeRules())
	if err != nil {
		return err
	}
	a := &authorizers{node: node, rbac: rbac, factory: f, stop: make(chan struct{})}
	f.Start(a.stop)
	syncCtx, cancel := context.WithTimeout(ctx, authzSyncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), rbac.HasSynced, node.HasSynced) {
		close(a.stop)
		f.Shutdown()
		return fmt.Errorf("authorizer caches did not sync: %w", context.Cause(syncCtx))
	}
	s.mu.Lock()
	s.authz = a
	s.mu.Unlock()
	return nil
}

// stopAuthorizers stops the caches' watches. The caches stay: requests
// still in flight while the engine shuts down (a last event, a status)
// are decided on what they last held rather than refused.
func (s *Server) stopAuthorizers() {
	s.mu.Lock()
	a := s.authz
	s.mu.Unlock()
	if a != nil {
		a.stopOnce.Do(func() {
			close(a.stop)
			a.factory.Shutdown()
		})
	}
}

func (s *Server) authorizers() *authorizers {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authz
}

// masters is whether the user is in system:masters, which Kubernetes lets
// do anything without asking an authorizer.
func masters(u user.Info) bool {
	return u != nil && slices.Contains(u.GetGroups(), user.SystemPrivilegedGroup)
}

// decide asks the chain about a request: allowed, or the reason for the
// refusal (possibly empty).
func (s *Server) decide(ctx context.Context, a authorizer.Attributes) (bool, string, error) {
	if s.cfg.DisableRBAC || masters(a.GetUser()) {
		return true, "", nil
	}
	chain := s.authorizers()
	if chain == nil {
		return false, "the authorizer is not ready", nil
	}
	var reasons []string
	var errs []error
	for _, z := range []authorizer.Authorizer{chain.node, chain.rbac} {
		d, reason, err := z.Authorize(ctx, a)
		if err != nil {
			errs = append(errs, err)
		}
		if reason != "" {
			reasons = append(reasons, reason)
		}
		switch d {
		case authorizer.DecisionAllow:
			return true, "", nil
		case authorizer.DecisionDeny:
			return false, strings.Join(reasons, "\n"), errors.Join(errs...)
		}
	}
	return false, strings.Join(reasons, "\n"), errors.Join(errs...)
}

// attributes are a request's authorization attributes for u.
func attributes(r *http.Request, u user.Info) (*authorizer.AttributesRecord, error) {
	info, err := authz.NewRequestInfo(r)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	return &authorizer.AttributesRecord{User: u, Verb: info.Verb, Namespace: info.Namespace,
		APIGroup: info.APIGroup, APIVersion: info.APIVersion, Resource: info.Resource,
		Subresource: info.Subresource, Name: info.Name, ResourceRequest: info.IsResourceRequest, Path: info.Path}, nil
}

// authorize lets the request through when the caller may make it, after
// impersonation (impersonate.go) has replaced the caller if asked to. The
// anonymous user gets 401 everywhere but the public paths (health and
// version), as before RBAC. Everyone else is decided by the Node and RBAC
// authorizers, with system:masters always allowed; a refusal is
// Kubernetes' 403 Forbidden in its words.
func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := UserFrom(r.Context())
		if u == nil || u.GetName() == user.Anonymous && !public(r) {
			writeError(w, apierrors.NewUnauthorized("Unauthorized"))
			return
		}
		if impersonating(r) {
			as, err := s.impersonate(r, u)
			if err != nil {
				writeError(w, err)
				return
			}
			r = r.WithContext(WithUser(r.Context(), as))
			u = as
		}
		if public(r) || s.cfg.DisableRBAC || masters(u) {
			next.ServeHTTP(w, r)
			return
		}
		a, err := attributes(r, u)
		if err != nil {
			writeError(w, err)
			return
		}
		ok, reason, err := s.decide(r.Context(), a)
		if err != nil {
			s.log.Debug("authorizer error", "user", u.GetName(), "err", err)
		}
		if !ok {
			err := forbidden(a, reason)
			s.log.Debug("forbidden", "user", u.GetName(), "groups", u.GetGroups(), "err", err)
			writeError(w, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// forbidden is Kubernetes' 403 for a refused request, worded as its
// responsewriters.Forbidden words it.
func forbidden(a authorizer.Attributes, reason string) error {
	msg := forbiddenMessage(a)
	if reason != "" {
		msg += ": " + reason
	}
	return apierrors.NewForbidden(schema.GroupResource{Group: a.GetAPIGroup(), Resource: a.GetResource()}, a.GetName(), errors.New(msg))
}

func forbiddenMessage(a authorizer.Attributes) string {
	name := ""
	if u := a.GetUser(); u != nil {
		name = u.GetName()
	}
	if !a.IsResourceRequest() {
		return fmt.Sprintf("User %q cannot %s path %q", name, a.GetVerb(), a.GetPath())
	}
	resource := a.GetResource()
	if sub := a.GetSubresource(); sub != "" {
		resource += "/" + sub
	}
	if ns := a.GetNamespace(); ns != "" {
		return fmt.Sprintf("User %q cannot %s resource %q in API group %q in the namespace %q", name, a.GetVerb(), resource, a.GetAPIGroup(), ns)
	}
	return fmt.Sprintf("User %q cannot %s resource %q in API group %q at the cluster scope", name, a.GetVerb(), resource, a.GetAPIGroup())
}
