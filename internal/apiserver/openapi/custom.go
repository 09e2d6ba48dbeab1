package openapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// Custom resources: their kinds have no Go type; the schema is the CRD's
// structural schema (the row's Custom.Schema), completed as the apiserver
// completes it: apiVersion, kind and metadata, and the GVK extension that
// kubectl explain and server-side apply look kinds up by. The document of
// the group version is rebuilt whenever its rows change (a CRD update
// installs new rows), and the component is written again then.

// customKinds indexes the custom rows of a group version by kind.
func customKinds(rows []*resources.Resource) map[schema.GroupVersionKind]*resources.Resource {
	out := map[schema.GroupVersionKind]*resources.Resource{}
	for _, r := range rows {
		if r.Custom != nil {
			out[r.GVK()] = r
		}
	}
	return out
}

// customName names a custom kind's component as the apiserver does: the
// group reversed (example.com/v1 Widget → com.example.v1.Widget).
func customName(gvk schema.GroupVersionKind) string {
	parts := strings.Split(gvk.Group, ".")
	slices.Reverse(parts)
	return sanitizeName(strings.Join(parts, ".") + "." + gvk.Version + "." + gvk.Kind)
}

// customSchema registers the component of a custom kind from its CRD.
func (b *docBuilder) customSchema(res *resources.Resource) (string, error) {
	gvk := res.GVK()
	if res.Custom.Schema == nil {
		return b.openSchema(gvk)
	}
	meta, err := b.gen.componentFor(objectMetaType)
	if err != nil {
		return "", err
	}
	metaRef, err := refTo(meta)
	if err != nil {
		return "", err
	}
	s := *res.Custom.Schema // shallow: the row's schema is shared and never changed
	s.Properties = maps.Clone(s.Properties)
	if s.Properties == nil {
		s.Properties = map[string]spec.Schema{}
	}
	s.Type = spec.StringOrArray{"object"}
	s.Properties["apiVersion"] = spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"string"},
		Description: "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}}
	s.Properties["kind"] = spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"string"},
		Description: "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}}
	s.Properties["metadata"] = spec.Schema{SchemaProps: spec.SchemaProps{AllOf: []spec.Schema{metaRef},
		Description: "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}}
	s.Extensions = maps.Clone(s.Extensions)
	s.AddExtension(extGVK, []map[string]string{gvkMap(gvk)})
	name := customName(gvk)
	b.gen.addComponent(name, &s, []string{meta})
	return name, nil
}

// ComponentSchemas returns the component schemas of a group version's
// document (the kinds and everything they refer to), as the API server
// needs them to type custom objects for server-side apply.
func (h *Handler) ComponentSchemas(gv schema.GroupVersion) (map[string]*spec.Schema, error) {
	docs, _, err := h.current()
	if err != nil {
		return nil, err
	}
	d, ok := docs[gvPath(gv)]
	if !ok {
		return nil, fmt.Errorf("openapi: no document for %s", gv)
	}
	var doc spec3.OpenAPI
	if err := json.Unmarshal(d.body, &doc); err != nil {
		return nil, fmt.Errorf("openapi: decoding %s: %w", gv, err)
	}
	if doc.Components == nil {
		return nil, fmt.Errorf("openapi: %s has no components", gv)
	}
	return doc.Components.Schemas, nil
}
