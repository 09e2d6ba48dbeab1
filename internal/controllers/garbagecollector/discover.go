package garbagecollector

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// DiscoverResources lists every resource the API serves that can be
// listed, watched and deleted, in its preferred version, as Kubernetes'
// collector watches them all: an owner of any kind can be deleted in the
// foreground or with orphaning, and its finalizer must then be seen.
// Events are left out (never owners, many, short-lived), as upstream does.
func DiscoverResources(d discovery.DiscoveryInterface) ([]Resource, error) {
	lists, err := d.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discovering resources: %w", err)
	}
	var out []Resource
	for _, l := range lists {
		gv, perr := schema.ParseGroupVersion(l.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range l.APIResources {
			if !hasVerbs(r.Verbs, "list", "watch", "delete") || r.Name == "events" || containsSlash(r.Name) {
				continue
			}
			out = append(out, Resource{GVR: gv.WithResource(r.Name), Kind: r.Kind, Namespaced: r.Namespaced})
		}
	}
	return out, nil
}

func hasVerbs(have []string, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func containsSlash(s string) bool { return slices.Contains([]byte(s), '/') }
