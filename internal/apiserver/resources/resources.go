// Package resources is the API server's table of resources: for each one its
// group, version, kind, scope, verbs, short names, categories and
// subresources. The table is data, not code: discovery, OpenAPI, routing and
// storage all read it, so adding a resource (a built-in kind now, a
// CustomResourceDefinition later) is adding a row.
package resources

import (
	"fmt"
	"slices"
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Verbs every stored resource supports.
var (
	// ReadWrite are the verbs of an ordinary stored resource.
	ReadWrite = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	// StatusVerbs are the verbs of a status subresource.
	StatusVerbs = []string{"get", "patch", "update"}
)

// Subresource is one subresource of a resource, e.g. deployments/scale.
type Subresource struct {
	Name string // "status", "scale", "log", "exec", …
	// Kind is what the subresource takes and returns; Group and Version are
	// set when they differ from the parent's (autoscaling/v1 Scale).
	Group, Version, Kind string
	Verbs                []string
}

// Resource is one REST resource in one group version.
type Resource struct {
	Group, Version string
	// Resource is the plural, lower-case name in URLs ("deployments").
	Resource string
	// Singular is the lower-case singular name ("deployment").
	Singular   string
	Kind       string // "Deployment"
	ListKind   string // "DeploymentList"
	Namespaced bool
	ShortNames []string
	Categories []string
	Verbs      []string
	// Subresources in the order discovery lists them.
	Subresources []Subresource
	// StorageVersion is the version objects are stored in when a resource is
	// served in several versions; empty means Version.
	StorageVersion string
	// Custom is set on rows served from a CustomResourceDefinition: their
	// objects have no Go type (they are unstructured), so the scheme does
	// not know their kinds.
	Custom *Custom
}

// Custom is what a custom resource's row carries beyond a built-in's.
type Custom struct {
	// Schema is the kind's OpenAPI v3 schema, from the CRD's structural
	// schema, for the OpenAPI documents; nil means any object.
	Schema *spec.Schema
	// CRD names the CustomResourceDefinition the row comes from.
	CRD string
}

// GVR is the resource's group, version and resource.
func (r *Resource) GVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Resource}
}

// GVK is the resource's group, version and kind.
func (r *Resource) GVK() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// GroupResource names the resource in error messages the way Kubernetes
// does: "deployments.apps", or "pods" for the core group.
func (r *Resource) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: r.Group, Resource: r.Resource}
}

// Sub returns the named subresource, or nil.
func (r *Resource) Sub(name string) *Subresource {
	for i := range r.Subresources {
		if r.Subresources[i].Name == name {
			return &r.Subresources[i]
		}
	}
	return nil
}

// Stored reports whether this row is the version objects are stored in, so
// that a walk over every object visits each once, not once per version.
func (r *Resource) Stored() bool { return r.StorageVersion == "" || r.StorageVersion == r.Version }

// HasVerb reports whether the resource supports verb.
func (r *Resource) HasVerb(verb string) bool { return slices.Contains(r.Verbs, verb) }

// Table holds the served resources. It is safe for concurrent use; the
// built-in table is fixed at New, and Add is there for CRDs later.
type Table struct {
	scheme *runtime.Scheme

	mu        sync.RWMutex
	resources []*Resource
	byGVR     map[schema.GroupVersionResource]*Resource
}

// New returns a registry holding the built-in resources, whose Go types must
// all be registered in scheme.
func New(scheme *runtime.Scheme) (*Table, error) {
	r := &Table{scheme: scheme, byGVR: map[schema.GroupVersionResource]*Resource{}}
	for _, res := range builtins() {
		if err := r.Add(res); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Scheme is the scheme the registry's kinds are registered in.
func (r *Table) Scheme() *runtime.Scheme { return r.scheme }

// Add serves one more resource. Its kind and list kind must be known to the
// scheme, and its group/version/resource must be new.
func (r *Table) Add(res Resource) error {
	if res.ListKind == "" {
		res.ListKind = res.Kind + "List"
	}
	if res.Verbs == nil {
		res.Verbs = ReadWrite
	}
	for _, k := range []string{res.Kind, res.ListKind} {
		gvk := schema.GroupVersionKind{Group: res.Group, Version: res.Version, Kind: k}
		if res.Custom == nil && !r.scheme.Recognizes(gvk) {
			return fmt.Errorf("registry: %s is not in the scheme", gvk)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.byGVR[res.GVR()]; dup {
		return fmt.Errorf("registry: %s registered twice", res.GVR())
	}
	p := &res
	r.resources = append(r.resources, p)
	r.byGVR[res.GVR()] = p
	return nil
}

// SetCustom replaces the rows served for a CustomResourceDefinition (named
// crd) with rows, one per served version: none removes them. A CRD may not
// take a group and resource a built-in kind or another CRD serves.
func (r *Table) SetCustom(crd string, rows []Resource) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range rows {
		if rows[i].Custom == nil || rows[i].Custom.CRD != crd {
			return fmt.Errorf("registry: row %s is not custom resource %s's", rows[i].GVR(), crd)
		}
		if rows[i].ListKind == "" {
			rows[i].ListKind = rows[i].Kind + "List"
		}
		if rows[i].Verbs == nil {
			rows[i].Verbs = ReadWrite
		}
		if old, ok := r.byGVR[rows[i].GVR()]; ok && (old.Custom == nil || old.Custom.CRD != crd) {
			return fmt.Errorf("registry: %s is served already", rows[i].GVR())
		}
	}
	kept := r.resources[:0:0]
	for _, res := range r.resources {
		if res.Custom != nil && res.Custom.CRD == crd {
			delete(r.byGVR, res.GVR())
			continue
		}
		kept = append(kept, res)
	}
	for i := range rows {
		p := &rows[i]
		kept = append(kept, p)
		r.byGVR[p.GVR()] = p
	}
	r.resources = kept
	return nil
}

// Get returns the resource for a group, version and plural name.
func (r *Table) Get(gvr schema.GroupVersionResource) (*Resource, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	res, ok := r.byGVR[gvr]
	return res, ok
}

// ForKind returns the resource that serves gvk.
func (r *Table) ForKind(gvk schema.GroupVersionKind) (*Resource, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, res := range r.resources {
		if res.GVK() == gvk {
			return res, true
		}
	}
	return nil, false
}

// All returns every resource, in registration order.
func (r *Table) All() []*Resource {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.resources)
}

// GroupVersions is one API group and its versions, preferred first.
type GroupVersions struct {
	Group    string
	Versions []string
}

// Groups lists the served groups: the core group ("") first, then the
// others in the order they were registered (which is how kubectl lists
// them); within a group, versions in registration order, the first being
// preferred.
func (r *Table) Groups() []GroupVersions {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []GroupVersions
	idx := map[string]int{}
	for _, res := range r.resources {
		i, ok := idx[res.Group]
		if !ok {
			i = len(out)
			idx[res.Group] = i
			out = append(out, GroupVersions{Group: res.Group})
		}
		if !slices.Contains(out[i].Versions, res.Version) {
			out[i].Versions = append(out[i].Versions, res.Version)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Group == "" && out[b].Group != "" })
	return out
}

// InGroupVersion returns the resources served in one group version.
func (r *Table) InGroupVersion(gv schema.GroupVersion) []*Resource {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*Resource
	for _, res := range r.resources {
		if res.Group == gv.Group && res.Version == gv.Version {
			out = append(out, res)
		}
	}
	return out
}
