package apiserver

import (
	"net/http"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// APIGroup is an API group the server serves from a function rather than
// from the store: read-only views computed on each request, such as
// metrics.k8s.io, which Kubernetes serves through an aggregated APIService
// (metrics-server, prometheus-adapter). It appears in discovery, legacy
// and aggregated, beside the stored groups; none of the store's machinery
// (watch, writes, OpenAPI, garbage collection) sees it.
type APIGroup struct {
	Name     string
	Versions []APIGroupVersion // the preferred first
}

// APIGroupVersion is one version of an APIGroup.
type APIGroupVersion struct {
	Version string
	// Resources are what discovery lists, as an aggregated API server's
	// /apis/<group>/<version> does; a name with a '/' is a subresource
	// ("pods/http_requests_per_second"). Group and Version may be left
	// empty.
	Resources []metav1.APIResource
	// Serve answers a request under /apis/<group>/<version>/, path being
	// the segments after the version (never empty). It returns the object
	// to send as JSON, or an error: an API status error (404, 405, 400)
	// is sent as such, anything else as a 500.
	Serve func(r *http.Request, path []string) (runtime.Object, error)
	// Create, when set, answers a POST under the version (path as for
	// Serve) with 201 and the object it returns: create-only kinds that
	// are computed and never stored (access reviews).
	Create func(w http.ResponseWriter, r *http.Request, path []string) (runtime.Object, error)
}

// extraGroup returns the configured APIGroup named name, or nil.
func (s *Server) extraGroup(name string) *APIGroup {
	for i := range s.cfg.Groups {
		if s.cfg.Groups[i].Name == name {
			return &s.cfg.Groups[i]
		}
	}
	return nil
}

// version returns the version v of the group, or nil.
func (g *APIGroup) version(v string) *APIGroupVersion {
	for i := range g.Versions {
		if g.Versions[i].Version == v {
			return &g.Versions[i]
		}
	}
	return nil
}

func (g *APIGroup) groupVersions() resources.GroupVersions {
	gv := resources.GroupVersions{Group: g.Name}
	for _, v := range g.Versions {
		gv.Versions = append(gv.Versions, v.Version)
	}
	return gv
}

// serveExtra answers everything under /apis/<group>/<version> of an
// APIGroup (segs are the path's segments, "apis" first). Only GET: the
// groups are read-only.
func (s *Server) serveExtra(w http.ResponseWriter, r *http.Request, g *APIGroup, segs []string) {
	v := g.version(segs[2])
	if v == nil {
		writeError(w, notFoundPath(r.URL.Path))
		return
	}
	gv := schema.GroupVersion{Group: g.Name, Version: v.Version}
	if len(segs) == 3 {
		list := metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String(),
			APIResources: v.Resources}
		writeJSON(w, http.StatusOK, &list)
		return
	}
	if r.Method == http.MethodPost && v.Create != nil {
		obj, err := v.Create(w, r, segs[3:])
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, obj)
		return
	}
	if r.Method != http.MethodGet {
		writeError(w, apierrors.NewMethodNotSupported(schema.GroupResource{Group: g.Name, Resource: segs[3]}, r.Method))
		return
	}
	if watch := r.URL.Query().Get("watch"); watch == "true" || watch == "1" {
		// Values computed per request have no resourceVersion to watch from.
		writeError(w, apierrors.NewMethodNotSupported(schema.GroupResource{Group: g.Name, Resource: segs[3]}, "watch"))
		return
	}
	obj, err := v.Serve(r, segs[3:])
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

// extraAggregated is an APIGroup in aggregated discovery, converted from
// its resource lists the way kube-aggregator converts an aggregated API
// server's: "parent/sub" names become subresources, a parent that is not
// listed itself gets an entry with no verbs.
func extraAggregated(g *APIGroup) apidiscoveryv2.APIGroupDiscovery {
	item := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: g.Name}}
	for _, v := range g.Versions {
		var out []apidiscoveryv2.APIResourceDiscovery
		parent := map[string]int{}
		scope := func(r metav1.APIResource) apidiscoveryv2.ResourceScope {
			if r.Namespaced {
				return apidiscoveryv2.ScopeNamespace
			}
			return apidiscoveryv2.ScopeCluster
		}
		kind := func(r metav1.APIResource) *metav1.GroupVersionKind {
			return &metav1.GroupVersionKind{Group: g.Name, Version: v.Version, Kind: r.Kind}
		}
		for _, r := range v.Resources {
			if strings.Contains(r.Name, "/") {
				continue
			}
			parent[r.Name] = len(out)
			out = append(out, apidiscoveryv2.APIResourceDiscovery{Resource: r.Name, SingularResource: r.SingularName,
				Scope: scope(r), Verbs: r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories, ResponseKind: kind(r)})
		}
		for _, r := range v.Resources {
			name, sub, ok := strings.Cut(r.Name, "/")
			if !ok {
				continue
			}
			i, found := parent[name]
			if !found {
				i = len(out)
				parent[name] = i
				// client-go before 0.26.4 dereferences ResponseKind.
				out = append(out, apidiscoveryv2.APIResourceDiscovery{Resource: name, Scope: scope(r), ResponseKind: &metav1.GroupVersionKind{}})
			}
			out[i].Subresources = append(out[i].Subresources, apidiscoveryv2.APISubresourceDiscovery{
				Subresource: sub, Verbs: r.Verbs, ResponseKind: kind(r)})
		}
		item.Versions = append(item.Versions, apidiscoveryv2.APIVersionDiscovery{Version: v.Version,
			Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent, Resources: out})
	}
	return item
}
