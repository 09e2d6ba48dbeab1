package apiserver

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// impersonating reports whether the request asks to act as someone else.
func impersonating(r *http.Request) bool {
	for k := range r.Header {
		if strings.HasPrefix(k, "Impersonate-") {
			return true
		}
	}
	return false
}

// impersonate returns who the request acts as, after checking, as
// Kubernetes' WithImpersonation filter does, that the caller holds the
// impersonate verb on each thing asked for: users (serviceaccounts for a
// service account's user name), groups, uids and each user extra. The
// impersonation headers are removed so nothing downstream sees them.
func (s *Server) impersonate(r *http.Request, caller user.Info) (user.Info, error) {
	name := r.Header.Get(authenticationv1.ImpersonateUserHeader)
	groups := r.Header.Values(authenticationv1.ImpersonateGroupHeader)
	uid := r.Header.Get(authenticationv1.ImpersonateUIDHeader)
	extra := map[string][]string{}
	for k, vs := range r.Header {
		if key, ok := strings.CutPrefix(k, authenticationv1.ImpersonateUserExtraHeaderPrefix); ok {
			if unescaped, err := url.PathUnescape(key); err == nil {
				key = unescaped
			}
			extra[strings.ToLower(key)] = append(extra[strings.ToLower(key)], vs...)
		}
	}
	if name == "" {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("requested %v without impersonating a user", impersonationList(groups, uid, extra)))
	}
	check := func(a *authorizer.AttributesRecord) error {
		a.User, a.Verb, a.ResourceRequest = caller, "impersonate", true
		ok, reason, _ := s.decide(r.Context(), a)
		if !ok {
			return forbidden(a, reason)
		}
		return nil
	}
	if ns, sa, err := serviceaccount.SplitUsername(name); err == nil {
		if err := check(&authorizer.AttributesRecord{Resource: "serviceaccounts", Namespace: ns, Name: sa}); err != nil {
			return nil, err
		}
		if len(groups) == 0 {
			// A service account's groups come with it, as when it
			// authenticates itself.
			groups = serviceaccount.MakeGroupNames(ns)
		}
	} else if err := check(&authorizer.AttributesRecord{Resource: "users", Name: name}); err != nil {
		return nil, err
	}
	for _, g := range groups {
		if err := check(&authorizer.AttributesRecord{Resource: "groups", Name: g}); err != nil {
			return nil, err
		}
	}
	if uid != "" {
		if err := check(&authorizer.AttributesRecord{APIGroup: authenticationv1.GroupName, Resource: "uids", Name: uid}); err != nil {
			return nil, err
		}
	}
	for k, vs := range extra {
		for _, v := range vs {
			if err := check(&authorizer.AttributesRecord{APIGroup: authenticationv1.GroupName, Resource: "userextras",
				Subresource: k, Name: v}); err != nil {
				return nil, err
			}
		}
	}
	// Everyone but the anonymous user is authenticated; Kubernetes adds
	// the group unless it was asked for already.
	switch {
	case name == user.Anonymous && !slices.Contains(groups, user.AllUnauthenticated):
		groups = append(groups, user.AllUnauthenticated)
	case name != user.Anonymous && !slices.Contains(groups, user.AllAuthenticated):
		groups = append(groups, user.AllAuthenticated)
	}
	for k := range r.Header {
		if strings.HasPrefix(k, "Impersonate-") {
			r.Header.Del(k)
		}
	}
	if len(extra) == 0 {
		extra = nil
	}
	return &user.DefaultInfo{Name: name, UID: uid, Groups: groups, Extra: extra}, nil
}

func impersonationList(groups []string, uid string, extra map[string][]string) []string {
	var out []string
	for _, g := range groups {
		out = append(out, authenticationv1.ImpersonateGroupHeader+"="+g)
	}
	if uid != "" {
		out = append(out, authenticationv1.ImpersonateUIDHeader+"="+uid)
	}
	for k, vs := range extra {
		for _, v := range vs {
			out = append(out, authenticationv1.ImpersonateUserExtraHeaderPrefix+k+"="+v)
		}
	}
	return out
}
