package openapi

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// kubernetesVersion is the version the documents' info block names; it is
// the release whose API the k8s.io/api types describe.
const kubernetesVersion = "v1.32.13"

// Patch content types. Strategic merge patch is advertised only for kinds
// with full schemas: kubectl computes the patch from the document when it
// is listed, and a partial schema makes it fail (kubectl-compat.md R9).
const (
	ctJSONPatch      = "application/json-patch+json"
	ctMergePatch     = "application/merge-patch+json"
	ctStrategicPatch = "application/strategic-merge-patch+json"
	ctApplyPatch     = "application/apply-patch+yaml"
)

// Components every document refers to from its operations.
var (
	deleteOptionsType   = reflect.TypeOf(metav1.DeleteOptions{})
	statusType          = reflect.TypeOf(metav1.Status{})
	patchType           = reflect.TypeOf(metav1.Patch{})
	apiResourceListType = reflect.TypeOf(metav1.APIResourceList{})
	objectMetaType      = reflect.TypeOf(metav1.ObjectMeta{})
	listMetaType        = reflect.TypeOf(metav1.ListMeta{})
)

// connectSubresources are streamed, not stored: the apiserver calls their
// operations "connect" and they answer with a byte stream, not an object.
var connectSubresources = map[string]bool{"exec": true, "attach": true, "portforward": true, "proxy": true}

// gvPath is the index key (and the URL suffix) of a group version's
// document: "api/v1" or "apis/apps/v1".
func gvPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

// upperFirst capitalizes the first letter, as operation IDs do.
func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// opGroup is the group as it appears in operation IDs: "Core" for the core
// group, otherwise the group without ".k8s.io", each dotted part capitalized
// ("rbac.authorization.k8s.io" → "RbacAuthorization").
func opGroup(group string) string {
	if group == "" {
		return "Core"
	}
	var b strings.Builder
	for _, p := range strings.Split(strings.TrimSuffix(group, ".k8s.io"), ".") {
		for _, q := range strings.Split(p, "-") {
			b.WriteString(upperFirst(q))
		}
	}
	return b.String()
}

// tag is the operation tag the apiserver uses ("apps_v1", "core_v1",
// "rbacAuthorization_v1").
func tag(gv schema.GroupVersion) string {
	g := opGroup(gv.Group)
	if g == "" {
		return "_" + gv.Version
	}
	return strings.ToLower(g[:1]) + g[1:] + "_" + gv.Version
}

// docBuilder assembles one group version's document.
type docBuilder struct {
	gen    *schemaGen
	gv     schema.GroupVersion
	paths  map[string]*spec3.Path
	roots  []string // components the operations refer to
	params *parameters
	// custom are the custom resources of the group version by kind: their
	// schemas come from their CRDs (custom.go).
	custom map[schema.GroupVersionKind]*resources.Resource
}

// buildDocument builds the OpenAPI document of one group version from its
// resources.
func buildDocument(gen *schemaGen, gv schema.GroupVersion, resources []*resources.Resource) (*spec3.OpenAPI, error) {
	b := &docBuilder{gen: gen, gv: gv, paths: map[string]*spec3.Path{}, params: newParameters(), custom: customKinds(resources)}
	for _, name := range []reflect.Type{deleteOptionsType, statusType, patchType, apiResourceListType} {
		if _, err := gen.componentFor(name); err != nil {
			return nil, err
		}
	}
	if err := b.discoveryPath(); err != nil {
		return nil, err
	}
	for _, res := range resources {
		if err := b.resource(res); err != nil {
			return nil, fmt.Errorf("%s: %w", res.GVR(), err)
		}
	}
	return &spec3.OpenAPI{
		Version: "3.0.0",
		Info:    &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: kubernetesVersion}},
		Paths:   &spec3.Paths{Paths: b.paths},
		Components: &spec3.Components{
			Schemas: gen.closure(b.roots),
		},
	}, nil
}

// prefix is the URL prefix of the group version: /api/v1 or /apis/g/v.
func (b *docBuilder) prefix() string { return "/" + gvPath(b.gv) }

// opID builds an operation ID the apiserver's way: verb, group, version,
// then the rest ("patch" "Apps" "V1" "NamespacedDeployment").
func (b *docBuilder) opID(verb, rest string) string {
	return verb + opGroup(b.gv.Group) + upperFirst(b.gv.Version) + rest
}

// ref returns a reference to the named component and notes it as used.
func (b *docBuilder) ref(name string) (*spec.Schema, error) {
	s, err := refTo(name)
	if err != nil {
		return nil, err
	}
	b.roots = append(b.roots, name)
	return &s, nil
}

// kindSchema returns the component name of a kind: the schema built from
// its Go type, or for a kind without one (a custom resource) an open
// schema. full reports whether the schema is complete, which decides if
// strategic merge patch is advertised.
func (b *docBuilder) kindSchema(gvk schema.GroupVersionKind) (name string, full bool, err error) {
	if res := b.custom[gvk]; res != nil {
		name, err := b.customSchema(res)
		return name, false, err
	}
	if obj, err := b.gen.scheme.New(gvk); err == nil {
		if _, unstructured := obj.(runtime.Unstructured); !unstructured {
			t := reflect.TypeOf(obj)
			for t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t.Kind() == reflect.Struct {
				name, err := b.gen.componentFor(t)
				return name, err == nil, err
			}
		}
	}
	name, err = b.openSchema(gvk)
	return name, false, err
}

// openSchema registers, once, a schema for a kind known only by name: an
// object with apiVersion, kind and metadata that keeps any other field. It
// is named like the apiserver names custom resource schemas (group reversed:
// example.com/v1 Widget → com.example.v1.Widget).
func (b *docBuilder) openSchema(gvk schema.GroupVersionKind) (string, error) {
	group := gvk.Group
	if group != "" {
		parts := strings.Split(group, ".")
		slices.Reverse(parts)
		group = strings.Join(parts, ".") + "."
	}
	name := sanitizeName(group + gvk.Version + "." + gvk.Kind)
	if _, ok := b.gen.components[name]; ok {
		return name, nil
	}
	isList := strings.HasSuffix(gvk.Kind, "List")
	metaType := objectMetaType
	if isList {
		metaType = listMetaType
	}
	meta, err := b.gen.componentFor(metaType)
	if err != nil {
		return "", err
	}
	metaRef, err := refTo(meta)
	if err != nil {
		return "", err
	}
	s := &spec.Schema{SchemaProps: spec.SchemaProps{
		Type: spec.StringOrArray{"object"},
		Properties: map[string]spec.Schema{
			"apiVersion": {SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"string"},
				Description: "APIVersion is the group/version of this object's schema, e.g. " + strings.TrimPrefix(gvk.GroupVersion().String(), "/") + "."}},
			"kind": {SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"string"},
				Description: "Kind is the kind of this object, " + gvk.Kind + "."}},
			"metadata": {SchemaProps: spec.SchemaProps{AllOf: []spec.Schema{metaRef}, Description: "Standard object metadata."}},
		},
	}}
	deps := []string{meta}
	if isList {
		item, _, err := b.kindSchema(gvk.GroupVersion().WithKind(strings.TrimSuffix(gvk.Kind, "List")))
		if err != nil {
			return "", err
		}
		itemRef, err := refTo(item)
		if err != nil {
			return "", err
		}
		s.Properties["items"] = spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"array"},
			Items: &spec.SchemaOrArray{Schema: &itemRef}, Description: "Items is the list of " + strings.TrimSuffix(gvk.Kind, "List") + " objects."}}
		s.Required = []string{"items"}
		deps = append(deps, item)
	} else {
		s.AddExtension(extPreserve, true)
	}
	s.AddExtension(extGVK, []map[string]string{gvkMap(gvk)})
	b.gen.addComponent(name, s, deps)
	return name, nil
}

// componentName is the component of a Go type the operations use (Status,
// DeleteOptions, Patch), already built in buildDocument.
func (b *docBuilder) componentName(t reflect.Type) (string, error) { return b.gen.componentFor(t) }

// path returns the path item for p, creating it with its path parameters.
func (b *docBuilder) path(p string, kindName string, namespaced, named bool) *spec3.Path {
	if item, ok := b.paths[p]; ok {
		return item
	}
	item := &spec3.Path{}
	if named {
		item.Parameters = append(item.Parameters, b.params.name(kindName))
	}
	if namespaced {
		item.Parameters = append(item.Parameters, b.params.namespace)
	}
	item.Parameters = append(item.Parameters, b.params.pretty)
	b.paths[p] = item
	return item
}

// discoveryPath adds GET <prefix>/ (the group version's resource list), as
// the apiserver documents it.
func (b *docBuilder) discoveryPath() error {
	name, err := b.componentName(apiResourceListType)
	if err != nil {
		return err
	}
	resp, err := b.responses(name, false, 200)
	if err != nil {
		return err
	}
	b.paths[b.prefix()+"/"] = &spec3.Path{PathProps: spec3.PathProps{Get: &spec3.Operation{OperationProps: spec3.OperationProps{
		Description: "get available resources",
		OperationId: "get" + opGroup(b.gv.Group) + upperFirst(b.gv.Version) + "APIResources",
		Tags:        []string{tag(b.gv)},
		Responses:   resp,
	}}}}
	return nil
}

// operation makes an operation with the shared fields set.
func (b *docBuilder) operation(id, description, action string, gvk schema.GroupVersionKind) *spec3.Operation {
	op := &spec3.Operation{OperationProps: spec3.OperationProps{
		Description: description,
		OperationId: id,
		Tags:        []string{tag(b.gv)},
	}}
	op.AddExtension(extAction, action)
	op.AddExtension(extGVK, gvkMap(gvk))
	return op
}

// responses answers with the named component under each status code.
func (b *docBuilder) responses(name string, stream bool, codes ...int) (*spec3.Responses, error) {
	r := &spec3.Responses{ResponsesProps: spec3.ResponsesProps{StatusCodeResponses: map[int]*spec3.Response{}}}
	for _, code := range codes {
		s, err := b.ref(name)
		if err != nil {
			return nil, err
		}
		content := map[string]*spec3.MediaType{"application/json": {MediaTypeProps: spec3.MediaTypeProps{Schema: s}}}
		if stream {
			content["application/json;stream=watch"] = &spec3.MediaType{MediaTypeProps: spec3.MediaTypeProps{Schema: s}}
		}
		r.StatusCodeResponses[code] = &spec3.Response{ResponseProps: spec3.ResponseProps{
			Description: httpStatusText(code),
			Content:     content,
		}}
	}
	r.StatusCodeResponses[401] = &spec3.Response{ResponseProps: spec3.ResponseProps{Description: "Unauthorized"}}
	return r, nil
}

// textResponses answers with a plain string (logs, streams).
func textResponses(contentType string) *spec3.Responses {
	s := &spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"string"}}}
	return &spec3.Responses{ResponsesProps: spec3.ResponsesProps{StatusCodeResponses: map[int]*spec3.Response{
		200: {ResponseProps: spec3.ResponseProps{Description: "OK", Content: map[string]*spec3.MediaType{
			contentType: {MediaTypeProps: spec3.MediaTypeProps{Schema: s}},
		}}},
		401: {ResponseProps: spec3.ResponseProps{Description: "Unauthorized"}},
	}}}
}

func httpStatusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 201:
		return "Created"
	case 202:
		return "Accepted"
	}
	return fmt.Sprint(code)
}

// body is a request body carrying the named component.
func (b *docBuilder) body(name string, required bool) (*spec3.RequestBody, error) {
	s, err := b.ref(name)
	if err != nil {
		return nil, err
	}
	return &spec3.RequestBody{RequestBodyProps: spec3.RequestBodyProps{
		Content:  map[string]*spec3.MediaType{"*/*": {MediaTypeProps: spec3.MediaTypeProps{Schema: s}}},
		Required: required,
	}}, nil
}

// patchBody is a PATCH request body in every patch type the kind supports.
func (b *docBuilder) patchBody(smp bool) (*spec3.RequestBody, error) {
	name, err := b.componentName(patchType)
	if err != nil {
		return nil, err
	}
	types := []string{ctJSONPatch, ctMergePatch, ctApplyPatch}
	if smp {
		types = append(types, ctStrategicPatch)
	}
	content := map[string]*spec3.MediaType{}
	for _, ct := range types {
		s, err := b.ref(name)
		if err != nil {
			return nil, err
		}
		content[ct] = &spec3.MediaType{MediaTypeProps: spec3.MediaTypeProps{Schema: s}}
	}
	return &spec3.RequestBody{RequestBodyProps: spec3.RequestBodyProps{Content: content, Required: true}}, nil
}

// resource adds the paths of one resource and its subresources.
func (b *docBuilder) resource(res *resources.Resource) error {
	gvk := res.GVK()
	kindName, full, err := b.kindSchema(gvk)
	if err != nil {
		return err
	}
	listKind := res.ListKind
	if listKind == "" {
		listKind = res.Kind + "List"
	}
	listName, _, err := b.kindSchema(b.gv.WithKind(listKind))
	if err != nil {
		return err
	}
	statusName, err := b.componentName(statusType)
	if err != nil {
		return err
	}
	deleteName, err := b.componentName(deleteOptionsType)
	if err != nil {
		return err
	}

	ns := ""
	collection := b.prefix() + "/" + res.Resource
	if res.Namespaced {
		ns = "Namespaced"
		collection = b.prefix() + "/namespaces/{namespace}/" + res.Resource
	}
	item := collection + "/{name}"
	k := res.Kind

	if res.HasVerb("list") {
		op := b.operation(b.opID("list", ns+k), "list or watch objects of kind "+k, "list", gvk)
		op.Parameters = b.params.list
		if op.Responses, err = b.responses(listName, true, 200); err != nil {
			return err
		}
		b.path(collection, k, res.Namespaced, false).Get = op
		if res.Namespaced {
			all := b.operation(b.opID("list", k+"ForAllNamespaces"), "list or watch objects of kind "+k, "list", gvk)
			all.Parameters = b.params.list
			if all.Responses, err = b.responses(listName, true, 200); err != nil {
				return err
			}
			b.path(b.prefix()+"/"+res.Resource, k, false, false).Get = all
		}
	}
	if res.HasVerb("create") {
		op := b.operation(b.opID("create", ns+k), "create a "+k, "post", gvk)
		op.Parameters = b.params.write
		if op.RequestBody, err = b.body(kindName, true); err != nil {
			return err
		}
		if op.Responses, err = b.responses(kindName, false, 200, 201, 202); err != nil {
			return err
		}
		b.path(collection, k, res.Namespaced, false).Post = op
	}
	if res.HasVerb("deletecollection") {
		op := b.operation(b.opID("delete", "Collection"+ns+k), "delete collection of "+k, "deletecollection", gvk)
		op.Parameters = b.params.deleteCollection
		if op.RequestBody, err = b.body(deleteName, false); err != nil {
			return err
		}
		if op.Responses, err = b.responses(statusName, false, 200); err != nil {
			return err
		}
		b.path(collection, k, res.Namespaced, false).Delete = op
	}
	if res.HasVerb("get") {
		op := b.operation(b.opID("read", ns+k), "read the specified "+k, "get", gvk)
		if op.Responses, err = b.responses(kindName, false, 200); err != nil {
			return err
		}
		b.path(item, k, res.Namespaced, true).Get = op
	}
	if res.HasVerb("update") {
		op := b.operation(b.opID("replace", ns+k), "replace the specified "+k, "put", gvk)
		op.Parameters = b.params.write
		if op.RequestBody, err = b.body(kindName, true); err != nil {
			return err
		}
		if op.Responses, err = b.responses(kindName, false, 200, 201); err != nil {
			return err
		}
		b.path(item, k, res.Namespaced, true).Put = op
	}
	if res.HasVerb("patch") {
		op := b.operation(b.opID("patch", ns+k), "partially update the specified "+k, "patch", gvk)
		op.Parameters = b.params.patch
		if op.RequestBody, err = b.patchBody(full); err != nil {
			return err
		}
		if op.Responses, err = b.responses(kindName, false, 200, 201); err != nil {
			return err
		}
		b.path(item, k, res.Namespaced, true).Patch = op
	}
	if res.HasVerb("delete") {
		op := b.operation(b.opID("delete", ns+k), "delete a "+k, "delete", gvk)
		op.Parameters = b.params.delete
		if op.RequestBody, err = b.body(deleteName, false); err != nil {
			return err
		}
		if op.Responses, err = b.responses(statusName, false, 200, 202); err != nil {
			return err
		}
		b.path(item, k, res.Namespaced, true).Delete = op
	}
	for _, sub := range res.Subresources {
		if err := b.subresource(res, sub, item, ns); err != nil {
			return fmt.Errorf("subresource %s: %w", sub.Name, err)
		}
	}
	return nil
}

// subresource adds the path of one subresource (status, scale, log, …).
func (b *docBuilder) subresource(res *resources.Resource, sub resources.Subresource, item, ns string) error {
	// As in the registry: Group and Version are set together when they
	// differ from the parent's; an empty Kind is the parent's.
	gvk := res.GVK()
	if sub.Version != "" {
		gvk.Group, gvk.Version = sub.Group, sub.Version
	}
	if sub.Kind != "" {
		gvk.Kind = sub.Kind
	}
	p := b.path(item+"/"+sub.Name, res.Kind, res.Namespaced, true)
	rest := ns + res.Kind + upperFirst(sub.Name)
	what := sub.Name + " of the specified " + res.Kind

	if connectSubresources[sub.Name] {
		// Streams: the body is not an object and there is nothing to patch.
		for _, verb := range sub.Verbs {
			method := map[string]string{"get": "Get", "create": "Post"}[verb]
			if method == "" {
				continue
			}
			op := b.operation(b.opID("connect", method+rest), "connect "+strings.ToUpper(method)+" requests to "+what, "connect", gvk)
			op.Responses = textResponses("*/*")
			if method == "Get" {
				p.Get = op
			} else {
				p.Post = op
			}
		}
		return nil
	}

	var (
		kindName string
		full     bool
		err      error
	)
	if sub.Name != "log" {
		if kindName, full, err = b.kindSchema(gvk); err != nil {
			return err
		}
	}
	for _, verb := range sub.Verbs {
		switch verb {
		case "get":
			op := b.operation(b.opID("read", rest), "read "+what, "get", gvk)
			if sub.Name == "log" {
				op.Responses = textResponses("text/plain")
			} else if op.Responses, err = b.responses(kindName, false, 200); err != nil {
				return err
			}
			p.Get = op
		case "create":
			if kindName == "" {
				continue
			}
			op := b.operation(b.opID("create", rest), "create "+what, "post", gvk)
			op.Parameters = b.params.write
			if op.RequestBody, err = b.body(kindName, true); err != nil {
				return err
			}
			if op.Responses, err = b.responses(kindName, false, 200, 201, 202); err != nil {
				return err
			}
			p.Post = op
		case "update":
			if kindName == "" {
				continue
			}
			op := b.operation(b.opID("replace", rest), "replace "+what, "put", gvk)
			op.Parameters = b.params.write
			if op.RequestBody, err = b.body(kindName, true); err != nil {
				return err
			}
			if op.Responses, err = b.responses(kindName, false, 200, 201); err != nil {
				return err
			}
			p.Put = op
		case "patch":
			if kindName == "" {
				continue
			}
			op := b.operation(b.opID("patch", rest), "partially update "+what, "patch", gvk)
			op.Parameters = b.params.patch
			if op.RequestBody, err = b.patchBody(full); err != nil {
				return err
			}
			if op.Responses, err = b.responses(kindName, false, 200, 201); err != nil {
				return err
			}
			p.Patch = op
		}
	}
	return nil
}

// parameters are the query and path parameters operations share. They are
// built once per document and shared by pointer; encoding repeats them.
type parameters struct {
	namespace, pretty                            *spec3.Parameter
	list, write, patch, delete, deleteCollection []*spec3.Parameter
}

func queryParam(name, typ, description string) *spec3.Parameter {
	return &spec3.Parameter{ParameterProps: spec3.ParameterProps{
		Name: name, In: "query", Description: description,
		Schema: &spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{typ}, UniqueItems: true}},
	}}
}

func newParameters() *parameters {
	p := &parameters{
		namespace: &spec3.Parameter{ParameterProps: spec3.ParameterProps{
			Name: "namespace", In: "path", Required: true,
			Description: "object name and auth scope, such as for teams and projects",
			Schema:      &spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"string"}, UniqueItems: true}},
		}},
		pretty: queryParam("pretty", "string", "If 'true', the output is pretty printed."),
	}
	dryRun := queryParam("dryRun", "string", "When present, the request is processed but nothing is persisted. The only valid value is All.")
	fieldManager := queryParam("fieldManager", "string", "The name of the actor making the change, recorded in managedFields. "+
		"Required for apply patches (application/apply-patch+yaml), optional otherwise.")
	fieldValidation := queryParam("fieldValidation", "string", "How to treat unknown and duplicate fields in the body: "+
		"Ignore drops them silently, Warn drops them with a warning header, Strict rejects the request.")
	force := queryParam("force", "boolean", "Force takes ownership of conflicting fields on an apply patch. "+
		"Must be unset for other patch types.")
	gracePeriod := queryParam("gracePeriodSeconds", "integer", "Seconds to wait before the object is deleted; zero deletes immediately. "+
		"Unset means the kind's default.")
	orphan := queryParam("orphanDependents", "boolean", "Deprecated, use propagationPolicy: whether dependents are orphaned.")
	propagation := queryParam("propagationPolicy", "string", "Whether and how dependents are garbage collected: Orphan, Background or Foreground.")
	ignoreStoreRead := queryParam("ignoreStoreReadErrorWithClusterBreakingPotential", "boolean",
		"Delete an object that cannot be read from storage (unsafe; for corrupt objects).")

	list := []*spec3.Parameter{
		queryParam("allowWatchBookmarks", "boolean", "Ask for BOOKMARK events on a watch; servers may ignore it."),
		queryParam("continue", "string", "The continue token of a previous paged list, to fetch the next page."),
		queryParam("fieldSelector", "string", "Restrict the list to objects whose fields match, e.g. metadata.name=foo. Defaults to everything."),
		queryParam("labelSelector", "string", "Restrict the list to objects whose labels match, e.g. app=web,tier!=db. Defaults to everything."),
		queryParam("limit", "integer", "The maximum number of objects to return; a continue token is set when more remain."),
		queryParam("resourceVersion", "string", "Which version of the collection to read or to start watching from; see resourceVersionMatch."),
		queryParam("resourceVersionMatch", "string", "How resourceVersion applies to a list: Exact or NotOlderThan."),
		queryParam("sendInitialEvents", "boolean", "With watch=true, start the watch with synthetic ADDED events for the current objects."),
		queryParam("timeoutSeconds", "integer", "Time limit for the list or watch call, in seconds."),
		queryParam("watch", "boolean", "Watch for changes and return a stream of add, update and remove events instead of a list."),
	}
	p.list = list
	p.write = []*spec3.Parameter{dryRun, fieldManager, fieldValidation}
	p.patch = []*spec3.Parameter{dryRun, fieldManager, fieldValidation, force}
	p.delete = []*spec3.Parameter{dryRun, gracePeriod, ignoreStoreRead, orphan, propagation}
	p.deleteCollection = append([]*spec3.Parameter{list[1], dryRun, list[2], gracePeriod, ignoreStoreRead, list[3], list[4], orphan, propagation},
		list[5], list[6], list[7], list[8])
	return p
}

// name is the path parameter naming one object of a kind.
func (p *parameters) name(kind string) *spec3.Parameter {
	return &spec3.Parameter{ParameterProps: spec3.ParameterProps{
		Name: "name", In: "path", Required: true, Description: "name of the " + kind,
		Schema: &spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"string"}, UniqueItems: true}},
	}}
}
