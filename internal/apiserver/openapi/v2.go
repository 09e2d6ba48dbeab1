package openapi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// V2Path is where the single Swagger 2.0 document is served. kubectl up to
// 1.28 reads it for apply (schema validation, the fieldValidation check,
// strategic-merge patch metadata) and explain; client-go's discovery client
// asks for it as protobuf.
const V2Path = "/openapi/v2"

// Media types of the v2 document, as kube-openapi's handler negotiates
// them: JSON, and gnostic's openapi_v2.Document in protobuf under its two
// names (kubectl asks for the one with "@", the answer carries the other).
const (
	mimeV2JSON              = "application/json"
	mimeV2Protobuf          = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
	mimeV2ProtobufAsked     = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
	v2DefinitionsRefPrefix  = "#/definitions/"
	v2SecurityBearerToken   = "BearerToken"
	v2ProtobufEncodingLabel = "protobuf"
	v2JSONEncodingLabel     = "json"
)

// v2Cache holds the v2 document built from one set of v3 documents and its
// encodings, each made on first request. The document is rebuilt when any
// v3 document changes (a resource added or removed from the registry, such
// as a CustomResourceDefinition): the v3 handler already notices that, so
// v2 follows it with no hook of its own.
type v2Cache struct {
	mu          sync.Mutex
	fingerprint string // the v3 documents' paths and hashes it was built from
	swagger     *spec.Swagger
	etag        string
	modified    time.Time
	bodies      map[string][]byte // by encoding label, plus "+gzip"
}

// fingerprintOf names a set of v3 documents: equal fingerprints, equal
// documents.
func fingerprintOf(docs map[string]*document) string {
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(docs[k].hash)
		b.WriteByte(';')
	}
	return b.String()
}

// V2 returns the Swagger 2.0 document of every served resource, built from
// the current v3 documents (one document for all group versions, as the
// apiserver serves it).
func (h *Handler) V2() (*spec.Swagger, error) {
	e, err := h.v2Encoded("")
	return e.swagger, err
}

// v2Encoding is one answer: the document, its bytes in the encoding asked
// for, and the ETag and time of the document those bytes are of (read
// together, so a rebuild between them cannot pair a body with another
// document's ETag).
type v2Encoding struct {
	swagger  *spec.Swagger
	body     []byte
	etag     string
	modified time.Time
}

// v2Encoded returns the current v2 document and, if encoding is not empty,
// its bytes in that encoding ("json", "protobuf", either with "+gzip").
func (h *Handler) v2Encoded(encoding string) (v2Encoding, error) {
	docs, _, err := h.current()
	if err != nil {
		return v2Encoding{}, err
	}
	fp := fingerprintOf(docs)
	c := &h.v2
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.swagger == nil || c.fingerprint != fp {
		sw, err := swaggerFromV3(docs)
		if err != nil {
			return v2Encoding{}, err
		}
		body, err := json.Marshal(sw)
		if err != nil {
			return v2Encoding{}, fmt.Errorf("openapi: encoding the v2 document: %w", err)
		}
		c.fingerprint, c.swagger, c.modified = fp, sw, time.Now()
		c.etag = fmt.Sprintf("%X", sha512.Sum512(body))
		c.bodies = map[string][]byte{v2JSONEncodingLabel: body}
	}
	e := v2Encoding{swagger: c.swagger, etag: c.etag, modified: c.modified}
	if encoding != "" {
		e.body, err = c.encode(encoding)
	}
	return e, err
}

// encode returns (and keeps) the document in one encoding. Caller holds mu.
func (c *v2Cache) encode(encoding string) ([]byte, error) {
	if b, ok := c.bodies[encoding]; ok {
		return b, nil
	}
	var out []byte
	if plain, ok := strings.CutSuffix(encoding, "+gzip"); ok {
		raw, err := c.encode(plain)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
		if err != nil {
			return nil, fmt.Errorf("openapi: gzip: %w", err)
		}
		if _, err := zw.Write(raw); err != nil {
			return nil, fmt.Errorf("openapi: gzip: %w", err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("openapi: gzip: %w", err)
		}
		out = buf.Bytes()
	} else if encoding == v2ProtobufEncodingLabel {
		// gnostic parses the JSON into its protobuf message, as kube-openapi's
		// handler does, so the bytes are what client-go expects to unmarshal.
		doc, err := openapi_v2.ParseDocument(c.bodies[v2JSONEncodingLabel])
		if err != nil {
			return nil, fmt.Errorf("openapi: the v2 document does not parse as OpenAPI 2.0: %w", err)
		}
		if out, err = proto.Marshal(doc); err != nil {
			return nil, fmt.Errorf("openapi: encoding the v2 document as protobuf: %w", err)
		}
	} else {
		return nil, fmt.Errorf("openapi: unknown encoding %q", encoding)
	}
	c.bodies[encoding] = out
	return out, nil
}

// serveV2 answers GET /openapi/v2 in JSON or protobuf by the Accept header
// (406 for neither), with an ETag that If-None-Match can match (304) and
// gzip when the client takes it. The ETag is the JSON's hash for every
// encoding, as in the apiserver: Vary tells caches they differ.
func (h *Handler) serveV2(w http.ResponseWriter, r *http.Request) {
	encoding, contentType, ok := negotiateV2(r.Header.Get("Accept"))
	if !ok {
		writeStatus(w, http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable,
			"only application/json and "+mimeV2Protobuf+" are served for the OpenAPI v2 document")
		return
	}
	gz := acceptsGzip(r.Header.Get("Accept-Encoding"))
	if gz {
		encoding += "+gzip"
	}
	e, err := h.v2Encoded(encoding)
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("ETag", strconv.Quote(e.etag))
	hdr.Set("Cache-Control", "no-cache, private")
	hdr.Add("Vary", "Accept")
	hdr.Add("Vary", "Accept-Encoding")
	if gz {
		hdr.Set("Content-Encoding", "gzip")
	}
	http.ServeContent(w, r, "", e.modified, bytes.NewReader(e.body))
}

// negotiateV2 picks the encoding for an Accept header: the first of JSON and
// protobuf that the highest-ranked acceptable media range allows, JSON for
// wildcards and for no header, as kube-openapi's handler does.
func negotiateV2(accept string) (encoding, contentType string, ok bool) {
	if strings.TrimSpace(accept) == "" {
		accept = "*/*"
	}
	type clause struct {
		mt string
		q  float64
	}
	var clauses []clause
	for _, c := range strings.Split(accept, ",") {
		mt, params, _ := strings.Cut(c, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		q, ok := qValue(params)
		if !ok {
			q = 1
		}
		if mt == "" || q <= 0 {
			continue
		}
		clauses = append(clauses, clause{mt, q})
	}
	sort.SliceStable(clauses, func(i, j int) bool { return clauses[i].q > clauses[j].q })
	for _, c := range clauses {
		switch c.mt {
		case mimeV2JSON, "application/*", "*/*":
			return v2JSONEncodingLabel, mimeV2JSON, true
		case mimeV2Protobuf, mimeV2ProtobufAsked:
			return v2ProtobufEncodingLabel, mimeV2Protobuf, true
		}
	}
	return "", "", false
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip.
func acceptsGzip(header string) bool {
	for _, c := range strings.Split(header, ",") {
		enc, params, _ := strings.Cut(c, ";")
		enc = strings.ToLower(strings.TrimSpace(enc))
		if enc != "gzip" && enc != "*" {
			continue
		}
		if q, ok := qValue(params); ok && q <= 0 {
			continue
		}
		return true
	}
	return false
}

// swaggerFromV3 merges the group versions' v3 documents into one Swagger
// 2.0 document: paths as they are, components as definitions, each schema
// and operation rewritten in v2's terms.
func swaggerFromV3(docs map[string]*document) (*spec.Swagger, error) {
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first document wins a name clash, always the same one
	sw := &spec.Swagger{SwaggerProps: spec.SwaggerProps{
		Swagger:     "2.0",
		Info:        &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: kubernetesVersion}},
		Paths:       &spec.Paths{Paths: map[string]spec.PathItem{}},
		Definitions: spec.Definitions{},
		SecurityDefinitions: spec.SecurityDefinitions{v2SecurityBearerToken: &spec.SecurityScheme{SecuritySchemeProps: spec.SecuritySchemeProps{
			Description: "Bearer Token authentication", Type: "apiKey", Name: "authorization", In: "header",
		}}},
		Security: []map[string][]string{{v2SecurityBearerToken: {}}},
	}}
	for _, k := range keys {
		var d spec3.OpenAPI
		if err := json.Unmarshal(docs[k].body, &d); err != nil {
			return nil, fmt.Errorf("openapi: reading the v3 document %s: %w", k, err)
		}
		if d.Components != nil {
			for name, s := range d.Components.Schemas {
				if _, dup := sw.Definitions[name]; dup || s == nil {
					continue
				}
				sw.Definitions[name] = v2Schema(s)
			}
		}
		if d.Paths == nil {
			continue
		}
		for p, item := range d.Paths.Paths {
			if _, dup := sw.Paths.Paths[p]; dup || item == nil {
				continue
			}
			sw.Paths.Paths[p] = v2PathItem(item)
		}
	}
	return sw, nil
}

// v2PathItem converts one path and its operations.
func v2PathItem(in *spec3.Path) spec.PathItem {
	var out spec.PathItem
	out.Parameters = v2Parameters(in.Parameters)
	out.Get = v2Operation(in.Get)
	out.Put = v2Operation(in.Put)
	out.Post = v2Operation(in.Post)
	out.Delete = v2Operation(in.Delete)
	out.Patch = v2Operation(in.Patch)
	out.Head = v2Operation(in.Head)
	out.Options = v2Operation(in.Options)
	return out
}

// v2Operation converts an operation: the request body becomes the "body"
// parameter and its media types "consumes"; the responses' media types
// become "produces". Extensions (x-kubernetes-action and the operation's
// x-kubernetes-group-version-kind, which kubectl's QueryParamVerifier
// matches PATCH operations by) are kept.
func v2Operation(in *spec3.Operation) *spec.Operation {
	if in == nil {
		return nil
	}
	out := &spec.Operation{}
	out.Description = in.Description
	out.Summary = in.Summary
	out.ID = in.OperationId
	out.Tags = in.Tags
	out.Deprecated = in.Deprecated
	out.Schemes = []string{"https"}
	out.Extensions = copyExtensions(in.Extensions)
	out.Parameters = v2Parameters(in.Parameters)
	if rb := in.RequestBody; rb != nil {
		types, s := mediaTypes(rb.Content)
		out.Consumes = types
		body := spec.Parameter{ParamProps: spec.ParamProps{Name: "body", In: "body", Required: rb.Required}}
		if s != nil {
			v := v2Schema(s)
			body.Schema = &v
		} else {
			body.Schema = &spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"object"}}}
		}
		// The apiserver lists the body first.
		out.Parameters = append([]spec.Parameter{body}, out.Parameters...)
	}
	if in.Responses != nil {
		out.Responses = &spec.Responses{ResponsesProps: spec.ResponsesProps{StatusCodeResponses: map[int]spec.Response{}}}
		var produces []string
		for code, r := range in.Responses.StatusCodeResponses {
			if r == nil {
				continue
			}
			resp := spec.Response{ResponseProps: spec.ResponseProps{Description: r.Description}}
			types, s := mediaTypes(r.Content)
			if s != nil {
				v := v2Schema(s)
				resp.Schema = &v
			}
			for _, t := range types {
				if !contains(produces, t) {
					produces = append(produces, t)
				}
			}
			out.Responses.StatusCodeResponses[code] = resp
		}
		if d := in.Responses.Default; d != nil {
			out.Responses.Default = &spec.Response{ResponseProps: spec.ResponseProps{Description: d.Description}}
		}
		sort.Strings(produces)
		out.Produces = produces
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, v := range ss {
		if v == s {
			return true
		}
	}
	return false
}

// mediaTypes returns a content map's media types, sorted, and the schema of
// the first that has one (every media type of an operation carries the same
// schema in these documents).
func mediaTypes(content map[string]*spec3.MediaType) ([]string, *spec.Schema) {
	types := make([]string, 0, len(content))
	for t := range content {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		if mt := content[t]; mt != nil && mt.Schema != nil {
			return types, mt.Schema
		}
	}
	return types, nil
}

// v2Parameters converts query and path parameters: v2 puts the primitive
// type on the parameter itself, not in a schema.
func v2Parameters(in []*spec3.Parameter) []spec.Parameter {
	var out []spec.Parameter
	for _, p := range in {
		if p == nil {
			continue
		}
		q := spec.Parameter{ParamProps: spec.ParamProps{
			Name: p.Name, In: p.In, Description: p.Description, Required: p.Required, AllowEmptyValue: p.AllowEmptyValue,
		}}
		q.Type = "string"
		if s := p.Schema; s != nil {
			if len(s.Type) == 1 && s.Type[0] != "object" && s.Type[0] != "array" && s.Type[0] != "null" {
				q.Type = s.Type[0]
			}
			q.Format = s.Format
			q.UniqueItems = s.UniqueItems
		}
		q.Extensions = copyExtensions(p.Extensions)
		out = append(out, q)
	}
	return out
}

func copyExtensions(in spec.Extensions) spec.Extensions {
	if len(in) == 0 {
		return nil
	}
	out := make(spec.Extensions, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// v2Ref rewrites a v3 component reference to a v2 definition reference.
func v2Ref(r spec.Ref) spec.Ref {
	s := r.String()
	if s == "" {
		return spec.Ref{}
	}
	if name, ok := strings.CutPrefix(s, schemaRefPrefix); ok {
		s = v2DefinitionsRefPrefix + name
	}
	ref, err := spec.NewRef(s)
	if err != nil {
		return r
	}
	return ref
}

// v2Schema rewrites a v3 schema in the subset of JSON schema that Swagger
// 2.0 has and that kubectl's v2 parser (k8s.io/kube-openapi/pkg/util/proto)
// accepts; that parser rejects the whole document for one schema it cannot
// read, so what it cannot read is dropped rather than passed on:
//
//   - a reference wrapped in allOf (v3's way to give a $ref a description
//     and patch extensions) becomes the bare $ref with those beside it, as
//     the apiserver's v2 document has it;
//   - oneOf, anyOf, not and further allOf are dropped (v2 has no oneOf or
//     anyOf); a oneOf of primitive types that include string becomes type
//     string, which is how the apiserver publishes IntOrString and Quantity;
//   - nullable, and x-kubernetes-preserve-unknown-fields, drop the items and
//     properties (and nullable the type), as the apiextensions-apiserver
//     does for custom resources: kubectl would reject null, or unknown
//     fields, where the v3 schema allows them;
//   - an array without one item schema, or a list of types, loses its
//     type (kubectl cannot read either);
//   - keywords v2 lacks (nullable, patternProperties, dependencies,
//     additionalItems, definitions, id, $schema, writeOnly, …) are left out.
func v2Schema(in *spec.Schema) spec.Schema {
	var out spec.Schema
	out.Ref = v2Ref(in.Ref)
	out.Description = in.Description
	out.Title = in.Title
	out.Format = in.Format
	out.Default = in.Default
	out.Maximum, out.ExclusiveMaximum = in.Maximum, in.ExclusiveMaximum
	out.Minimum, out.ExclusiveMinimum = in.Minimum, in.ExclusiveMinimum
	out.MaxLength, out.MinLength, out.Pattern = in.MaxLength, in.MinLength, in.Pattern
	out.MaxItems, out.MinItems, out.UniqueItems = in.MaxItems, in.MinItems, in.UniqueItems
	out.MultipleOf = in.MultipleOf
	out.Enum = in.Enum
	out.MaxProperties, out.MinProperties = in.MaxProperties, in.MinProperties
	out.ReadOnly = in.ReadOnly
	out.ExternalDocs = in.ExternalDocs
	out.Example = in.Example
	out.Extensions = copyExtensions(in.Extensions)
	if len(in.Type) == 1 && in.Type[0] != "null" {
		out.Type = spec.StringOrArray{in.Type[0]}
	}

	// allOf: [$ref] is a reference with siblings.
	if out.Ref.String() == "" && len(in.AllOf) == 1 && len(in.Type) == 0 && len(in.Properties) == 0 && in.AllOf[0].Ref.String() != "" {
		out.Ref = v2Ref(in.AllOf[0].Ref)
	}
	if len(out.Type) == 0 && len(in.OneOf) > 0 && primitiveWithString(in.OneOf) {
		out.Type = spec.StringOrArray{"string"}
	}

	if len(in.Properties) > 0 {
		out.Properties = make(map[string]spec.Schema, len(in.Properties))
		for name, p := range in.Properties {
			p := p
			out.Properties[name] = v2Schema(&p)
		}
	}
	if in.Items != nil && in.Items.Schema != nil {
		items := v2Schema(in.Items.Schema)
		out.Items = &spec.SchemaOrArray{Schema: &items}
	}
	if ap := in.AdditionalProperties; ap != nil {
		if ap.Schema != nil {
			s := v2Schema(ap.Schema)
			out.AdditionalProperties = &spec.SchemaOrBool{Allows: true, Schema: &s}
		} else {
			out.AdditionalProperties = &spec.SchemaOrBool{Allows: ap.Allows}
		}
	}

	required := in.Required
	for _, name := range required {
		if p, ok := in.Properties[name]; ok && p.Nullable {
			required = without(required, name)
		}
	}
	if ap := in.AdditionalProperties; ap != nil && ap.Schema != nil && ap.Schema.Nullable {
		required = nil
	}
	out.Required = required

	if in.Nullable {
		out.Type, out.Items, out.Properties = nil, nil, nil
	}
	if preserve, _ := in.Extensions.GetBool(extPreserve); preserve {
		out.Items, out.Properties = nil, nil
	}
	if len(out.Type) == 1 && out.Type[0] == "array" && out.Items == nil {
		out.Type = nil
	}
	if out.Ref.String() != "" {
		// kubectl rejects a $ref beside a type or properties.
		out.Type, out.Properties, out.Items, out.AdditionalProperties = nil, nil, nil, nil
	}
	return out
}

// primitiveWithString reports whether every alternative is a single
// primitive type and one of them is string.
func primitiveWithString(alts []spec.Schema) bool {
	str := false
	for _, a := range alts {
		if len(a.Type) != 1 || a.Ref.String() != "" {
			return false
		}
		switch a.Type[0] {
		case "string":
			str = true
		case "integer", "number", "boolean":
		default:
			return false
		}
	}
	return str
}

// without returns ss without x, copying only if x is there.
func without(ss []string, x string) []string {
	var out []string
	for _, s := range ss {
		if s != x {
			out = append(out, s)
		}
	}
	return out
}
