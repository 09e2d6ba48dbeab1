// Package authz decides whether a caller may make a request: the request's
// attributes as Kubernetes reads them from the URL (RequestInfo), RBAC rule
// matching, and the RBAC authorizer over Roles, ClusterRoles and their
// bindings kept in informer indexes.
//
// The decisions follow Kubernetes' RBAC authorizer
// (plugin/pkg/auth/authorizer/rbac) and its rule evaluation helpers
// (pkg/apis/rbac/v1/evaluation_helpers.go), so a policy written for a
// Kubernetes cluster means the same here.
package authz

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/fields"
)

// RequestInfo is what a request asks for, read from its method and path as
// Kubernetes' RequestInfoFactory reads them (k8s.io/apiserver
// pkg/endpoints/request): the verb, and for resource requests under /api
// and /apis the group, version, namespace, resource, subresource and name.
type RequestInfo struct {
	// IsResourceRequest is false for everything outside /api and /apis
	// resources (discovery, /healthz, /version, /openapi): those are
	// matched by nonResourceURLs.
	IsResourceRequest bool
	// Path is the URL path, for non-resource requests.
	Path string
	// Verb is get, list, watch, create, update, patch, delete,
	// deletecollection or a path-prefix verb (proxy) for resource
	// requests; the lower-cased method for non-resource requests.
	Verb                             string
	APIPrefix, APIGroup, APIVersion  string
	Namespace, Resource, Subresource string
	Name                             string
	Parts                            []string
}

// specialVerbs are verbs given as a path prefix (/api/v1/watch/pods,
// /api/v1/proxy/...); proxy names no subresource.
var specialVerbs = map[string]bool{"proxy": true, "watch": true}

// namespaceSubresources are a namespace's own subresources: in
// /api/v1/namespaces/x/status the resource is the namespace.
var namespaceSubresources = map[string]bool{"status": true, "finalize": true}

// NewRequestInfo reads the request's attributes. The error is for a path
// that names a path-prefix verb but nothing after it, as Kubernetes'.
func NewRequestInfo(r *http.Request) (*RequestInfo, error) {
	return newRequestInfo(r.Method, r.URL)
}

func newRequestInfo(method string, u *url.URL) (*RequestInfo, error) {
	info := &RequestInfo{Path: u.Path, Verb: strings.ToLower(method)}
	parts := splitPath(u.Path)
	if len(parts) < 3 || (parts[0] != "api" && parts[0] != "apis") {
		return info, nil
	}
	info.APIPrefix = parts[0]
	parts = parts[1:]
	if info.APIPrefix == "apis" {
		if len(parts) < 3 {
			return info, nil // /apis/<group>/<version>: discovery
		}
		info.APIGroup = parts[0]
		parts = parts[1:]
	}
	info.IsResourceRequest = true
	info.APIVersion = parts[0]
	parts = parts[1:]

	if specialVerbs[parts[0]] {
		if len(parts) < 2 {
			return info, fmt.Errorf("unable to determine kind and namespace from url, %v", u)
		}
		info.Verb = parts[0]
		parts = parts[1:]
	} else {
		switch method {
		case http.MethodPost:
			info.Verb = "create"
		case http.MethodGet, http.MethodHead:
			info.Verb = "get"
		case http.MethodPut:
			info.Verb = "update"
		case http.MethodPatch:
			info.Verb = "patch"
		case http.MethodDelete:
			info.Verb = "delete"
		default:
			info.Verb = ""
		}
	}
	if parts[0] == "namespaces" {
		if len(parts) > 1 {
			info.Namespace = parts[1]
			// /namespaces/x/pods/...: the resource follows; /namespaces/x
			// and /namespaces/x/status: the resource is the namespace.
			if len(parts) > 2 && !namespaceSubresources[parts[2]] {
				parts = parts[2:]
			}
		}
	}
	info.Parts = parts
	switch {
	case len(parts) >= 3 && info.Verb != "proxy":
		info.Subresource = parts[2]
		fallthrough
	case len(parts) >= 2:
		info.Name = parts[1]
		fallthrough
	case len(parts) >= 1:
		info.Resource = parts[0]
	}
	q := u.Query()
	if info.Name == "" && info.Verb == "get" {
		info.Verb = "list"
		if w := q["watch"]; len(w) > 0 {
			switch strings.ToLower(w[0]) {
			case "false", "0":
			default:
				info.Verb = "watch"
			}
		}
		// A list or watch of one object by name (metadata.name=x, as
		// client-go's single-object informers and kubectl get -w x send)
		// is authorized as that object, so resourceNames rules apply.
		if fs := q.Get("fieldSelector"); fs != "" {
			if sel, err := fields.ParseSelector(fs); err == nil {
				if name, ok := sel.RequiresExactMatch("metadata.name"); ok && validPathSegment(name) {
					info.Name = name
				}
			}
		}
	}
	if info.Name == "" && info.Verb == "delete" {
		info.Verb = "deletecollection"
	}
	return info, nil
}

// validPathSegment is apimachinery's IsValidPathSegmentName: a name that
// could appear in a URL path.
func validPathSegment(name string) bool {
	if name == "." || name == ".." {
		return false
	}
	return !strings.ContainsAny(name, "/%")
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return []string{}
	}
	return strings.Split(p, "/")
}
