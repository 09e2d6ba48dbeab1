package authz

import (
	"net/url"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// TestRequestInfo reads paths as Kubernetes' RequestInfoFactory does (its
// requestinfo_test.go cases).
func TestRequestInfo(t *testing.T) {
	for _, c := range []struct {
		method, url                              string
		verb, group, version, ns, res, sub, name string
		isResource                               bool
	}{
		{"GET", "/api/v1/namespaces", "list", "", "v1", "", "namespaces", "", "", true},
		{"GET", "/api/v1/namespaces/other", "get", "", "v1", "other", "namespaces", "", "other", true},
		{"GET", "/api/v1/namespaces/other/pods/foo", "get", "", "v1", "other", "pods", "", "foo", true},
		{"GET", "/api/v1/namespaces/other/pods", "list", "", "v1", "other", "pods", "", "", true},
		{"GET", "/api/v1/pods", "list", "", "v1", "", "pods", "", "", true},
		{"HEAD", "/api/v1/namespaces/other/pods/foo", "get", "", "v1", "other", "pods", "", "foo", true},
		{"GET", "/api/v1/namespaces/other/pods?watch=true", "watch", "", "v1", "other", "pods", "", "", true},
		{"GET", "/api/v1/namespaces/other/pods?watch=false", "list", "", "v1", "other", "pods", "", "", true},
		{"GET", "/api/v1/watch/namespaces/other/pods", "watch", "", "v1", "other", "pods", "", "", true},
		{"GET", "/api/v1/namespaces/other/pods?fieldSelector=metadata.name%3Dfoo", "list", "", "v1", "other", "pods", "", "foo", true},
		{"POST", "/api/v1/namespaces/other/pods", "create", "", "v1", "other", "pods", "", "", true},
		{"PUT", "/api/v1/namespaces/other/pods/foo", "update", "", "v1", "other", "pods", "", "foo", true},
		{"PATCH", "/api/v1/namespaces/other/pods/foo", "patch", "", "v1", "other", "pods", "", "foo", true},
		{"DELETE", "/api/v1/namespaces/other/pods/foo", "delete", "", "v1", "other", "pods", "", "foo", true},
		{"DELETE", "/api/v1/namespaces/other/pods", "deletecollection", "", "v1", "other", "pods", "", "", true},
		{"GET", "/api/v1/namespaces/other/pods/foo/log", "get", "", "v1", "other", "pods", "log", "foo", true},
		{"PUT", "/api/v1/namespaces/other/finalize", "update", "", "v1", "other", "namespaces", "finalize", "other", true},
		{"PUT", "/api/v1/namespaces/other/status", "update", "", "v1", "other", "namespaces", "status", "other", true},
		{"GET", "/apis/extensions/v1beta1/namespaces/other/extensions", "list", "extensions", "v1beta1", "other", "extensions", "", "", true},
		{"GET", "/apis/apps/v1/namespaces/a/deployments/d/scale", "get", "apps", "v1", "a", "deployments", "scale", "d", true},
		{"POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "create", "authorization.k8s.io", "v1", "", "selfsubjectaccessreviews", "", "", true},
		{"GET", "/api/v1/proxy/namespaces/other/pods/foo/bar", "proxy", "", "v1", "other", "pods", "", "foo", true},
		{"GET", "/api", "get", "", "", "", "", "", "", false},
		{"GET", "/apis/apps/v1", "get", "", "", "", "", "", "", false},
		{"GET", "/healthz/ping", "get", "", "", "", "", "", "", false},
		{"POST", "/openapi/v2", "post", "", "", "", "", "", "", false},
	} {
		u, _ := url.Parse(c.url)
		got, err := newRequestInfo(c.method, u)
		if err != nil {
			t.Errorf("%s %s: %v", c.method, c.url, err)
			continue
		}
		if got.IsResourceRequest != c.isResource || got.Verb != c.verb || got.APIGroup != c.group ||
			(c.isResource && got.APIVersion != c.version) || got.Namespace != c.ns || got.Resource != c.res ||
			got.Subresource != c.sub || got.Name != c.name {
			t.Errorf("%s %s: got %+v", c.method, c.url, got)
		}
	}
	u, _ := url.Parse("/api/v1/watch")
	if _, err := newRequestInfo("GET", u); err == nil {
		t.Error("/api/v1/watch: want an error (a path verb with nothing after it)")
	}
}

// TestRuleAllows matches rules as Kubernetes' evaluation helpers do.
func TestRuleAllows(t *testing.T) {
	alice := &user.DefaultInfo{Name: "alice"}
	res := func(verb, group, resource, sub, name string) authorizer.Attributes {
		return &authorizer.AttributesRecord{User: alice, Verb: verb, APIGroup: group, Resource: resource,
			Subresource: sub, Name: name, Namespace: "ns", ResourceRequest: true}
	}
	path := func(verb, p string) authorizer.Attributes {
		return &authorizer.AttributesRecord{User: alice, Verb: verb, Path: p}
	}
	rule := func(verbs, groups, resources, names []string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{Verbs: verbs, APIGroups: groups, Resources: resources, ResourceNames: names}
	}
	s := func(v ...string) []string { return v }
	for _, c := range []struct {
		name string
		rule rbacv1.PolicyRule
		a    authorizer.Attributes
		want bool
	}{
		{"exact", rule(s("get"), s(""), s("pods"), nil), res("get", "", "pods", "", "p"), true},
		{"other verb", rule(s("get"), s(""), s("pods"), nil), res("delete", "", "pods", "", "p"), false},
		{"verb star", rule(s("*"), s(""), s("pods"), nil), res("delete", "", "pods", "", "p"), true},
		{"other group", rule(s("get"), s(""), s("deployments"), nil), res("get", "apps", "deployments", "", ""), false},
		{"group star", rule(s("get"), s("*"), s("deployments"), nil), res("get", "apps", "deployments", "", ""), true},
		{"resource star", rule(s("get"), s(""), s("*"), nil), res("get", "", "secrets", "", ""), true},
		{"resource star covers subresources", rule(s("get"), s(""), s("*"), nil), res("get", "", "pods", "log", "p"), true},
		{"resource does not cover subresource", rule(s("get"), s(""), s("pods"), nil), res("get", "", "pods", "log", "p"), false},
		{"resource/subresource", rule(s("get"), s(""), s("pods/log"), nil), res("get", "", "pods", "log", "p"), true},
		{"subresource is not resource", rule(s("get"), s(""), s("pods/log"), nil), res("get", "", "pods", "", "p"), false},
		{"*/subresource", rule(s("get"), s(""), s("*/scale"), nil), res("get", "", "replicationcontrollers", "scale", "r"), true},
		{"*/subresource other sub", rule(s("get"), s(""), s("*/scale"), nil), res("get", "", "pods", "status", "p"), false},
		{"resourceNames match", rule(s("get"), s(""), s("pods"), s("a", "p")), res("get", "", "pods", "", "p"), true},
		{"resourceNames miss", rule(s("get"), s(""), s("pods"), s("a")), res("get", "", "pods", "", "p"), false},
		{"resourceNames list without name", rule(s("list"), s(""), s("pods"), s("a")), res("list", "", "pods", "", ""), false},
		{"nonresource exact", rbacv1.PolicyRule{Verbs: s("get"), NonResourceURLs: s("/healthz")}, path("get", "/healthz"), true},
		{"nonresource prefix", rbacv1.PolicyRule{Verbs: s("get"), NonResourceURLs: s("/healthz/*")}, path("get", "/healthz/ping"), true},
		{"nonresource prefix not parent", rbacv1.PolicyRule{Verbs: s("get"), NonResourceURLs: s("/healthz/*")}, path("get", "/healthz"), false},
		{"nonresource star", rbacv1.PolicyRule{Verbs: s("*"), NonResourceURLs: s("*")}, path("post", "/anything"), true},
		{"nonresource verb", rbacv1.PolicyRule{Verbs: s("get"), NonResourceURLs: s("*")}, path("post", "/x"), false},
		{"resource rule vs path", rule(s("*"), s("*"), s("*"), nil), path("get", "/healthz"), false},
		{"path rule vs resource", rbacv1.PolicyRule{Verbs: s("*"), NonResourceURLs: s("*")}, res("get", "", "pods", "", ""), false},
	} {
		if got := RuleAllows(c.a, &c.rule); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestAppliesTo matches binding subjects as Kubernetes does.
func TestAppliesTo(t *testing.T) {
	sa := &user.DefaultInfo{Name: "system:serviceaccount:ns1:robot", Groups: []string{"system:serviceaccounts"}}
	for _, c := range []struct {
		name string
		u    user.Info
		s    rbacv1.Subject
		ns   string
		want bool
	}{
		{"user", &user.DefaultInfo{Name: "alice"}, rbacv1.Subject{Kind: "User", Name: "alice"}, "", true},
		{"other user", &user.DefaultInfo{Name: "bob"}, rbacv1.Subject{Kind: "User", Name: "alice"}, "", false},
		{"group", &user.DefaultInfo{Name: "bob", Groups: []string{"dev"}}, rbacv1.Subject{Kind: "Group", Name: "dev"}, "", true},
		{"service account", sa, rbacv1.Subject{Kind: "ServiceAccount", Namespace: "ns1", Name: "robot"}, "", true},
		{"service account binding namespace", sa, rbacv1.Subject{Kind: "ServiceAccount", Name: "robot"}, "ns1", true},
		{"service account other namespace", sa, rbacv1.Subject{Kind: "ServiceAccount", Name: "robot"}, "ns2", false},
		{"service account no namespace", sa, rbacv1.Subject{Kind: "ServiceAccount", Name: "robot"}, "", false},
	} {
		if got := AppliesTo(c.u, c.s, c.ns); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
