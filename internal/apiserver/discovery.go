package apiserver

import (
	"encoding/json"
	"net/http"
	"runtime"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// KubernetesVersion is the Kubernetes release whose API this server speaks.
// kubectl warns when it is more than one minor version away from its own.
const KubernetesVersion = "v1.32.13"

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, version.Info{
		Major: "1", Minor: "32", GitVersion: KubernetesVersion + "+skiff", GitTreeState: "clean",
		GoVersion: runtime.Version(), Compiler: runtime.Compiler, Platform: runtime.GOOS + "/" + runtime.GOARCH,
	})
}

// aggregatedV2 is the Content-Type of an aggregated discovery answer.
// client-go picks its decoder from this header, not from the body.
const aggregatedV2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

func wantsAggregated(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if strings.Contains(part, "as=APIGroupDiscoveryList") && strings.Contains(part, "v=v2") &&
			!strings.Contains(part, "v=v2beta1") {
			return true
		}
	}
	return false
}

// discoveryRoot answers GET /api and GET /apis.
func (s *Server) discoveryRoot(w http.ResponseWriter, r *http.Request, core bool) {
	var groups []resources.GroupVersions
	for _, g := range s.reg.Groups() {
		if (g.Group == "") == core {
			groups = append(groups, g)
		}
	}
	if wantsAggregated(r) {
		list := apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"}}
		for _, g := range groups {
			item := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: g.Group}}
			for _, v := range g.Versions {
				item.Versions = append(item.Versions, apidiscoveryv2.APIVersionDiscovery{
					Version: v, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
					Resources: s.aggregatedResources(schema.GroupVersion{Group: g.Group, Version: v}),
				})
			}
			list.Items = append(list.Items, item)
		}
		if !core {
			for i := range s.cfg.Groups {
				list.Items = append(list.Items, extraAggregated(&s.cfg.Groups[i]))
			}
		}
		b, _ := json.Marshal(&list)
		w.Header().Set("Content-Type", aggregatedV2)
		w.Header().Set("Vary", "Accept")
		w.Write(b)
		return
	}
	if core {
		writeJSON(w, http.StatusOK, &metav1.APIVersions{
			TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}},
		})
		return
	}
	list := metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	for _, g := range groups {
		list.Groups = append(list.Groups, apiGroup(g))
	}
	for i := range s.cfg.Groups {
		list.Groups = append(list.Groups, apiGroup(s.cfg.Groups[i].groupVersions()))
	}
	writeJSON(w, http.StatusOK, &list)
}

func apiGroup(g resources.GroupVersions) metav1.APIGroup {
	out := metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}, Name: g.Group}
	for _, v := range g.Versions {
		out.Versions = append(out.Versions, metav1.GroupVersionForDiscovery{GroupVersion: g.Group + "/" + v, Version: v})
	}
	out.PreferredVersion = out.Versions[0]
	return out
}

func (s *Server) aggregatedResources(gv schema.GroupVersion) []apidiscoveryv2.APIResourceDiscovery {
	var out []apidiscoveryv2.APIResourceDiscovery
	for _, res := range s.reg.InGroupVersion(gv) {
		scope := apidiscoveryv2.ScopeCluster
		if res.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		d := apidiscoveryv2.APIResourceDiscovery{
			Resource: res.Resource, SingularResource: res.Singular, Scope: scope, Verbs: res.Verbs,
			ShortNames: res.ShortNames, Categories: res.Categories,
			ResponseKind: &metav1.GroupVersionKind{Group: res.Group, Version: res.Version, Kind: res.Kind},
		}
		for _, sub := range res.Subresources {
			g, v := subGV(res, &sub)
			d.Subresources = append(d.Subresources, apidiscoveryv2.APISubresourceDiscovery{
				Subresource: sub.Name, Verbs: sub.Verbs,
				ResponseKind: &metav1.GroupVersionKind{Group: g, Version: v, Kind: subKind(res, &sub)},
			})
		}
		out = append(out, d)
	}
	return out
}

func subGV(res *resources.Resource, sub *resources.Subresource) (string, string) {
	if sub.Version != "" {
		return sub.Group, sub.Version
	}
	return res.Group, res.Version
}

func subKind(res *resources.Resource, sub *resources.Subresource) string {
	if sub.Kind != "" {
		return sub.Kind
	}
	return res.Kind
}

// resourceList answers GET /api/v1 and GET /apis/<group>/<version>.
func (s *Server) resourceList(w http.ResponseWriter, gv schema.GroupVersion) {
	resources := s.reg.InGroupVersion(gv)
	if len(resources) == 0 {
		writeError(w, notFoundPath(gv.String()))
		return
	}
	list := metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
	for _, res := range resources {
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: res.Resource, SingularName: res.Singular, Namespaced: res.Namespaced, Kind: res.Kind,
			Verbs: res.Verbs, ShortNames: res.ShortNames, Categories: res.Categories,
		})
		for _, sub := range res.Subresources {
			g, v := subGV(res, &sub)
			ar := metav1.APIResource{Name: res.Resource + "/" + sub.Name, Namespaced: res.Namespaced,
				Kind: subKind(res, &sub), Verbs: sub.Verbs}
			if g != res.Group || v != res.Version {
				ar.Group, ar.Version = g, v
			}
			list.APIResources = append(list.APIResources, ar)
		}
	}
	writeJSON(w, http.StatusOK, &list)
}

// groupInfo answers GET /apis/<group>.
func (s *Server) groupInfo(w http.ResponseWriter, group string) {
	for _, g := range s.reg.Groups() {
		if g.Group == group && group != "" {
			ag := apiGroup(g)
			writeJSON(w, http.StatusOK, &ag)
			return
		}
	}
	if g := s.extraGroup(group); g != nil {
		ag := apiGroup(g.groupVersions())
		writeJSON(w, http.StatusOK, &ag)
		return
	}
	writeError(w, notFoundPath("/apis/"+group))
}
