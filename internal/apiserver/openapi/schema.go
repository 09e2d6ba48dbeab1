package openapi

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// OpenAPI extension keys the apiserver publishes and kubectl reads.
const (
	extGVK           = "x-kubernetes-group-version-kind"
	extPatchStrategy = "x-kubernetes-patch-strategy"
	extPatchMergeKey = "x-kubernetes-patch-merge-key"
	extIntOrString   = "x-kubernetes-int-or-string"
	extPreserve      = "x-kubernetes-preserve-unknown-fields"
	extAction        = "x-kubernetes-action"

	schemaRefPrefix = "#/components/schemas/"
)

// component is one entry of components.schemas: a finished schema and the
// names of the components it refers to directly, from which each document
// takes the transitive closure of what its paths use.
type component struct {
	schema *spec.Schema
	deps   []string
}

// schemaGen turns Go types into OpenAPI v3 schemas by reflection. Every named
// struct type becomes a component referenced by name, which both matches the
// apiserver's documents and ends recursion on self-referencing types. The
// generated schemas are shared by all documents and never modified after
// they are built.
type schemaGen struct {
	scheme     *runtime.Scheme
	byType     map[reflect.Type]string
	byName     map[string]reflect.Type
	components map[string]*component
}

func newSchemaGen(scheme *runtime.Scheme) *schemaGen {
	return &schemaGen{
		scheme:     scheme,
		byType:     map[reflect.Type]string{},
		byName:     map[string]reflect.Type{},
		components: map[string]*component{},
	}
}

// Interfaces apimachinery's special types (Time, Quantity, IntOrString, …)
// implement to tell openapi-gen what they look like on the wire.
type (
	openAPITyper      interface{ OpenAPISchemaType() []string }
	openAPIFormatter  interface{ OpenAPISchemaFormat() string }
	openAPIV3OneOfer  interface{ OpenAPIV3OneOfTypes() []string }
	swaggerDocumenter interface{ SwaggerDoc() map[string]string }
)

var (
	jsonMarshalerType = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
	textMarshalerType = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()
)

// specialDocs describes the apimachinery types that have no generated
// SwaggerDoc (their documentation lives in Go comments, which reflection
// cannot see), keyed by component name.
var specialDocs = map[string]string{
	"io.k8s.apimachinery.pkg.apis.meta.v1.Time":      "Time is a timestamp, serialized as an RFC 3339 string in UTC with second precision, e.g. \"2024-05-01T12:00:00Z\".",
	"io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime is a timestamp with microsecond precision, serialized as an RFC 3339 string, e.g. \"2024-05-01T12:00:00.000000Z\".",
	"io.k8s.apimachinery.pkg.apis.meta.v1.Duration":  "Duration is a length of time, serialized as a string in Go's duration syntax, e.g. \"90s\" or \"1h30m\".",
	"io.k8s.apimachinery.pkg.api.resource.Quantity": "Quantity is a fixed-point number, serialized as a string (or a plain number) of a decimal or exponent form " +
		"with an optional suffix: binary SI (Ki, Mi, Gi, Ti, Pi, Ei), decimal SI (m, k, M, G, T, P, E) or a decimal exponent (e3, E6). " +
		"Examples: \"100m\" (0.1), \"1.5Gi\", \"2\", \"1e3\". Values are kept to at most three decimal places and are re-emitted in canonical form.",
	"io.k8s.apimachinery.pkg.util.intstr.IntOrString": "IntOrString holds either an int32 or a string; in JSON it is the bare number or the bare string, " +
		"e.g. 8080 or \"http\", 25 or \"25%\".",
	"io.k8s.apimachinery.pkg.runtime.RawExtension": "RawExtension holds an embedded object of any kind, kept as its raw JSON; " +
		"the object normally carries its own apiVersion and kind.",
	"io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent": "WatchEvent is one event of a watch stream: its type (ADDED, MODIFIED, DELETED, BOOKMARK or ERROR) and the object it concerns.",
}

// restFriendlyName names a Go type the way the apiserver names its schemas:
// the package path with the domain reversed and "/" turned into ".", then
// the type name ("k8s.io/api/apps/v1".Deployment → io.k8s.api.apps.v1.Deployment).
func restFriendlyName(t reflect.Type) string {
	parts := strings.Split(t.PkgPath(), "/")
	if len(parts) > 0 && strings.Contains(parts[0], ".") {
		host := strings.Split(parts[0], ".")
		for i, j := 0, len(host)-1; i < j; i, j = i+1, j-1 {
			host[i], host[j] = host[j], host[i]
		}
		parts[0] = strings.Join(host, ".")
	}
	return sanitizeName(strings.Join(append(parts, t.Name()), "."))
}

// sanitizeName keeps a component name to characters that need no escaping
// in a JSON pointer or a URL (generic instantiations have brackets).
func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '_'
	}, strings.TrimPrefix(s, "."))
}

// refTo returns a schema that is only a reference to the named component.
func refTo(name string) (spec.Schema, error) {
	ref, err := spec.NewRef(schemaRefPrefix + name)
	if err != nil {
		return spec.Schema{}, fmt.Errorf("reference to %s: %w", name, err)
	}
	return spec.Schema{SchemaProps: spec.SchemaProps{Ref: ref}}, nil
}

// isRef reports whether s is a bare reference.
func isRef(s *spec.Schema) bool { return s.Ref.String() != "" }

// componentFor returns the component name for t (a named type that gets its
// own schema), building the schema on first use.
func (g *schemaGen) componentFor(t reflect.Type) (string, error) {
	if name, ok := g.byType[t]; ok {
		return name, nil
	}
	name := restFriendlyName(t)
	// Two Go types mapping to one name cannot happen for k8s.io packages,
	// but a clash would silently merge two schemas, so keep them apart.
	for i := 2; ; i++ {
		if _, taken := g.byName[name]; !taken {
			break
		}
		name = restFriendlyName(t) + "_" + strconv.Itoa(i)
	}
	g.byType[t] = name
	g.byName[name] = t
	// Registered before building so that a type reaching itself through its
	// fields finds the name and stops.
	c := &component{}
	g.components[name] = c
	s, deps, err := g.buildNamedSafely(t, name)
	if err != nil {
		delete(g.components, name)
		delete(g.byType, t)
		delete(g.byName, name)
		return "", fmt.Errorf("schema of %s: %w", name, err)
	}
	c.schema, c.deps = s, uniqueSorted(deps)
	return name, nil
}

// buildNamedSafely is buildNamed, with a panic in a type's own methods
// (SwaggerDoc, OpenAPISchemaType, …, called on zero values) turned into an
// error: a misbehaving type must not take the server down.
func (g *schemaGen) buildNamedSafely(t reflect.Type, name string) (s *spec.Schema, deps []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, deps, err = nil, nil, fmt.Errorf("panic while describing %v: %v", t, r)
		}
	}()
	return g.buildNamed(t, name)
}

// hasOwnComponent reports whether t gets a component of its own rather than
// an inline schema: named structs, and named types with a custom wire form.
func hasOwnComponent(t reflect.Type) bool {
	if t.Name() == "" || t.PkgPath() == "" {
		return false
	}
	if t.Kind() == reflect.Struct {
		return true
	}
	return implements[openAPITyper](t)
}

// buildNamed builds the component schema of a named type.
func (g *schemaGen) buildNamed(t reflect.Type, name string) (*spec.Schema, []string, error) {
	s := &spec.Schema{}
	var deps []string
	// A pointer has the methods of both receivers.
	zero := reflect.New(t).Interface()
	switch {
	case implements[openAPITyper](t):
		// The type declares its wire form (Time, Quantity, IntOrString, Duration).
		if o, ok := zero.(openAPIV3OneOfer); ok && len(o.OpenAPIV3OneOfTypes()) > 0 {
			for _, typ := range o.OpenAPIV3OneOfTypes() {
				s.OneOf = append(s.OneOf, spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{typ}}})
			}
		} else if o, ok := zero.(openAPITyper); ok {
			s.Type = o.OpenAPISchemaType()
		}
		if f, ok := zero.(openAPIFormatter); ok {
			s.Format = f.OpenAPISchemaFormat()
		}
		if s.Format == "int-or-string" {
			s.AddExtension(extIntOrString, true)
		}
	case t.Kind() == reflect.Struct && (t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType) ||
		t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType)):
		// A struct with its own JSON encoding (RawExtension, FieldsV1) does
		// not look like its fields on the wire; all that can be said is
		// that it is an object.
		s.Type = spec.StringOrArray{"object"}
	case t.Kind() == reflect.Struct:
		if err := g.structInto(t, s, &deps); err != nil {
			return nil, nil, err
		}
		s.Type = spec.StringOrArray{"object"}
	default:
		inner, d, err := g.typeSchema(t, true)
		if err != nil {
			return nil, nil, err
		}
		if inner == nil {
			return nil, nil, fmt.Errorf("%v has no JSON form", t)
		}
		s, deps = inner, d
	}
	if doc := ownSwaggerDoc(t); doc[""] != "" {
		s.Description = doc[""]
	} else if d := specialDocs[name]; d != "" {
		s.Description = d
	}
	if gvks := g.gvksOf(t); len(gvks) > 0 {
		s.AddExtension(extGVK, gvks)
	}
	return s, deps, nil
}

// implements reports whether values of t (or pointers to them) have I's methods.
func implements[I any](t reflect.Type) bool {
	it := reflect.TypeOf((*I)(nil)).Elem()
	return t.Implements(it) || reflect.PointerTo(t).Implements(it)
}

// ownSwaggerDoc returns t's generated documentation, ignoring a SwaggerDoc
// method promoted from an embedded field, which documents that field's type
// and not t.
func ownSwaggerDoc(t reflect.Type) map[string]string {
	d, ok := reflect.New(t).Interface().(swaggerDocumenter)
	if !ok {
		return nil
	}
	doc := d.SwaggerDoc()
	if t.Kind() == reflect.Struct {
		own := reflect.ValueOf(doc)
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.Anonymous {
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ed, ok := reflect.New(ft).Interface().(swaggerDocumenter); ok {
				if reflect.ValueOf(ed.SwaggerDoc()).UnsafePointer() == own.UnsafePointer() {
					return nil
				}
			}
		}
	}
	return doc
}

// gvksOf lists the group/version/kinds the scheme registers t under, for
// x-kubernetes-group-version-kind: kubectl finds a kind's schema by it.
func (g *schemaGen) gvksOf(t reflect.Type) []map[string]string {
	if g.scheme == nil || t.Kind() != reflect.Struct {
		return nil
	}
	obj, ok := reflect.New(t).Interface().(runtime.Object)
	if !ok {
		return nil
	}
	kinds, _, err := g.scheme.ObjectKinds(obj)
	if err != nil {
		return nil
	}
	return gvkList(kinds)
}

// gvkList renders kinds as the extension's list of {group, version, kind},
// without the scheme's internal versions, in a stable order.
func gvkList(kinds []schema.GroupVersionKind) []map[string]string {
	seen := map[schema.GroupVersionKind]bool{}
	var ks []schema.GroupVersionKind
	for _, k := range kinds {
		if k.Version == runtime.APIVersionInternal || k.Version == "" || seen[k] {
			continue
		}
		seen[k] = true
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		a, b := ks[i], ks[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Kind < b.Kind
	})
	out := make([]map[string]string, 0, len(ks))
	for _, k := range ks {
		out = append(out, gvkMap(k))
	}
	return out
}

func gvkMap(k schema.GroupVersionKind) map[string]string {
	return map[string]string{"group": k.Group, "version": k.Version, "kind": k.Kind}
}

// jsonField is how encoding/json treats one struct field.
type jsonField struct {
	name      string
	omitempty bool
	inline    bool
	skip      bool
}

func parseJSONTag(f reflect.StructField) jsonField {
	tag, hasTag := f.Tag.Lookup("json")
	if tag == "-" {
		return jsonField{skip: true}
	}
	name, opts, _ := strings.Cut(tag, ",")
	jf := jsonField{name: name}
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "omitempty", "omitzero":
			jf.omitempty = true
		case "inline":
			jf.inline = true
		}
	}
	ft := f.Type
	if ft.Kind() == reflect.Pointer {
		ft = ft.Elem()
	}
	// encoding/json inlines an embedded struct without a name; Kubernetes
	// spells that `json:",inline"`.
	if name == "" && (f.Anonymous || jf.inline) && ft.Kind() == reflect.Struct {
		jf.inline = true
		return jf
	}
	jf.inline = false
	if !f.IsExported() {
		return jsonField{skip: true}
	}
	if name == "" || !hasTag {
		jf.name = f.Name
	}
	return jf
}

// structInto adds t's JSON fields (inline embedded structs merged in) to s.
func (g *schemaGen) structInto(t reflect.Type, s *spec.Schema, deps *[]string) error {
	doc := ownSwaggerDoc(t)
	var inline []reflect.Type
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		jf := parseJSONTag(f)
		if jf.skip {
			continue
		}
		if jf.inline {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			inline = append(inline, ft)
			continue
		}
		if _, dup := s.Properties[jf.name]; dup {
			// The outer struct's field wins, as in encoding/json.
			continue
		}
		ps, d, err := g.typeSchema(f.Type, false)
		if err != nil {
			return fmt.Errorf("field %s: %w", f.Name, err)
		}
		if ps == nil {
			continue // not representable in JSON (func, chan)
		}
		*deps = append(*deps, d...)
		prop := *ps
		desc := doc[jf.name]
		ext := spec.Extensions{}
		if v := f.Tag.Get("patchStrategy"); v != "" {
			ext[extPatchStrategy] = v
		}
		if v := f.Tag.Get("patchMergeKey"); v != "" {
			ext[extPatchMergeKey] = v
		}
		if isRef(&prop) && (desc != "" || len(ext) > 0) {
			// A $ref ignores its siblings in OpenAPI 3.0, so the apiserver
			// wraps it in allOf to attach the field's own description and
			// patch extensions; kubectl explain and strategicpatch both read
			// that form.
			prop = spec.Schema{SchemaProps: spec.SchemaProps{AllOf: []spec.Schema{prop}}}
		}
		prop.Description = desc
		for k, v := range ext {
			prop.AddExtension(k, v)
		}
		if s.Properties == nil {
			s.Properties = map[string]spec.Schema{}
		}
		s.Properties[jf.name] = prop
		if fieldRequired(t, jf.name, jf.omitempty) {
			// Kubernetes marks optional fields omitempty almost everywhere;
			// optional.go has the exceptions.
			s.Required = append(s.Required, jf.name)
		}
	}
	// Inlined fields come after the struct's own, which win on a clash as
	// they do in encoding/json (the shallower field).
	for _, ft := range inline {
		if err := g.structInto(ft, s, deps); err != nil {
			return fmt.Errorf("inline %v: %w", ft, err)
		}
	}
	sort.Strings(s.Required)
	return nil
}

// typeSchema is the schema of a value of type t where it is used (a field,
// an item, a map value): a reference for types with their own component, an
// inline schema otherwise. nil means t cannot be encoded as JSON. top is set
// while building the component of t itself, so a named non-struct type
// describes its underlying type instead of referring to itself.
func (g *schemaGen) typeSchema(t reflect.Type, top bool) (*spec.Schema, []string, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if !top && hasOwnComponent(t) {
		name, err := g.componentFor(t)
		if err != nil {
			return nil, nil, err
		}
		ref, err := refTo(name)
		if err != nil {
			return nil, nil, err
		}
		return &ref, []string{name}, nil
	}
	prim := func(typ, format string) (*spec.Schema, []string, error) {
		return &spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{typ}, Format: format}}, nil, nil
	}
	switch t.Kind() {
	case reflect.Bool:
		return prim("boolean", "")
	case reflect.String:
		return prim("string", "")
	case reflect.Int, reflect.Int16, reflect.Int32, reflect.Uint, reflect.Uint16:
		return prim("integer", "int32")
	case reflect.Int8, reflect.Uint8:
		return prim("integer", "byte")
	case reflect.Int64, reflect.Uint32, reflect.Uint64:
		return prim("integer", "int64")
	case reflect.Float32:
		return prim("number", "float")
	case reflect.Float64:
		return prim("number", "double")
	case reflect.Interface:
		// Anything at all; say so, so that validation does not prune it.
		s := &spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"object"}}}
		s.AddExtension(extPreserve, true)
		return s, nil, nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			return prim("string", "byte") // encoding/json writes []byte as base64
		}
		items, deps, err := g.typeSchema(t.Elem(), false)
		if err != nil || items == nil {
			return nil, nil, err
		}
		return &spec.Schema{SchemaProps: spec.SchemaProps{
			Type:  spec.StringOrArray{"array"},
			Items: &spec.SchemaOrArray{Schema: items},
		}}, deps, nil
	case reflect.Map:
		vals, deps, err := g.typeSchema(t.Elem(), false)
		if err != nil || vals == nil {
			return nil, nil, err
		}
		return &spec.Schema{SchemaProps: spec.SchemaProps{
			Type:                 spec.StringOrArray{"object"},
			AdditionalProperties: &spec.SchemaOrBool{Allows: true, Schema: vals},
		}}, deps, nil
	case reflect.Struct:
		// An anonymous struct type: describe its fields in place.
		s := &spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"object"}}}
		var deps []string
		if err := g.structInto(t, s, &deps); err != nil {
			return nil, nil, err
		}
		return s, deps, nil
	}
	return nil, nil, nil // func, chan, complex, unsafe pointer: not JSON
}

// closure returns the given component names and everything they refer to,
// transitively.
func (g *schemaGen) closure(roots []string) map[string]*spec.Schema {
	out := map[string]*spec.Schema{}
	stack := append([]string(nil), roots...)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, done := out[n]; done {
			continue
		}
		c, ok := g.components[n]
		if !ok || c.schema == nil {
			continue
		}
		out[n] = c.schema
		stack = append(stack, c.deps...)
	}
	return out
}

// addComponent registers a schema that does not come from a Go type (the
// open schema of a kind without one).
func (g *schemaGen) addComponent(name string, s *spec.Schema, deps []string) {
	g.components[name] = &component{schema: s, deps: uniqueSorted(deps)}
}

func uniqueSorted(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
