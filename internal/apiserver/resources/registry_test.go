package resources

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestBuiltinsAreConsistent(t *testing.T) {
	s, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	short := map[string]string{}
	for _, res := range r.All() {
		for _, sn := range res.ShortNames {
			if other, dup := short[sn]; dup && other != res.Resource {
				t.Errorf("short name %q on %s and %s", sn, other, res.Resource)
			}
			short[sn] = res.Resource
		}
		for _, sub := range res.Subresources {
			g, v := sub.Group, sub.Version
			if v == "" {
				g, v = res.Group, res.Version
			}
			if gvk := (schema.GroupVersionKind{Group: g, Version: v, Kind: sub.Kind}); sub.Kind != "" && !s.Recognizes(gvk) {
				t.Errorf("%s/%s: kind %s unknown", res.Resource, sub.Name, gvk)
			}
		}
	}
	dep, ok := r.Get(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"})
	if !ok || dep.Sub("scale") == nil || dep.Sub("scale").Kind != "Scale" || dep.GroupResource().String() != "deployments.apps" {
		t.Fatalf("deployments: %+v", dep)
	}
	if g := r.Groups(); g[0].Group != "" || g[1].Group != "apps" {
		t.Fatalf("group order: %+v", g)
	}
	if err := r.Add(*dep); err == nil {
		t.Fatal("duplicate registration accepted")
	}
	if err := r.Add(Resource{Group: "example.com", Version: "v1", Resource: "widgets", Kind: "Widget"}); err == nil {
		t.Fatal("kind unknown to the scheme accepted")
	}
}
