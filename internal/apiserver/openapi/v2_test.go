package openapi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	protoopenapi "k8s.io/kube-openapi/pkg/util/proto"
	protovalidation "k8s.io/kube-openapi/pkg/util/proto/validation"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/yaml"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// listenV2 serves h on this helper's loopback range (127.133.0.0/16), not
// on httptest's 127.0.0.1.
func listenV2(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.133.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// newV2Server serves a fresh handler over the built-in resource table.
func newV2Server(t *testing.T) (*httptest.Server, *resources.Table) {
	t.Helper()
	s, err := resources.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := resources.New(s)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return listenV2(t, h), reg
}

// fetchV2 gets /openapi/v2 with the given headers, without transparent
// decompression, and fails the test on anything but 200.
func fetchV2(t *testing.T, srv *httptest.Server, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+V2Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// v2JSON returns the JSON document, checked to be 200 application/json.
func v2JSON(t *testing.T, srv *httptest.Server) []byte {
	t.Helper()
	resp, body := fetchV2(t, srv, "Accept", "application/json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %s: %.300s", V2Path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return body
}

// kubectlModels parses a v2 document as kubectl does: gnostic's document,
// then kube-openapi's proto models, which fail on the first schema kubectl
// could not walk.
func kubectlModels(t *testing.T, body []byte) (*openapi_v2.Document, protoopenapi.Models) {
	t.Helper()
	doc, err := openapi_v2.ParseDocument(body)
	if err != nil {
		t.Fatalf("gnostic: %v", err)
	}
	models, err := protoopenapi.NewOpenAPIData(doc)
	if err != nil {
		t.Fatalf("kubectl's model parser: %v", err)
	}
	return doc, models
}

// TestV2DocumentIsValidSwagger reads the document with the three parsers
// that matter (kube-openapi's spec, gnostic, kubectl's models), and checks
// that every registry kind has a definition carrying its GVK, that every
// reference resolves, and that no v3-only keyword leaked into it.
func TestV2DocumentIsValidSwagger(t *testing.T) {
	srv, reg := newV2Server(t)
	body := v2JSON(t, srv)

	var sw spec.Swagger
	if err := json.Unmarshal(body, &sw); err != nil {
		t.Fatalf("spec.Swagger: %v", err)
	}
	if sw.Swagger != "2.0" || sw.Info == nil || sw.Info.Title != "Kubernetes" {
		t.Errorf("header: swagger %q info %+v", sw.Swagger, sw.Info)
	}
	_, models := kubectlModels(t, body)

	// Every kind served, and its list, has a definition whose GVK extension
	// names it: kubectl finds schemas by that extension.
	byGVK := map[schema.GroupVersionKind]string{}
	for name, d := range sw.Definitions {
		var gvks []map[string]string
		if err := d.Extensions.GetObject(extGVK, &gvks); err != nil {
			t.Errorf("%s: %s: %v", name, extGVK, err)
		}
		for _, g := range gvks {
			byGVK[schema.GroupVersionKind{Group: g["group"], Version: g["version"], Kind: g["kind"]}] = name
		}
	}
	for _, res := range reg.All() {
		for _, kind := range []string{res.Kind, res.ListKind} {
			gvk := schema.GroupVersionKind{Group: res.Group, Version: res.Version, Kind: kind}
			name, ok := byGVK[gvk]
			if !ok {
				t.Errorf("no definition for %s", gvk)
				continue
			}
			if models.LookupModel(name) == nil {
				t.Errorf("kubectl cannot find the model %s", name)
			}
		}
	}
	if byGVK[schema.GroupVersionKind{Version: "v1", Kind: "Pod"}] != "io.k8s.api.core.v1.Pod" {
		t.Errorf("Pod is defined as %q, want io.k8s.api.core.v1.Pod", byGVK[schema.GroupVersionKind{Version: "v1", Kind: "Pod"}])
	}

	// References point into #/definitions and resolve; no keyword OpenAPI
	// 2.0 lacks is left anywhere.
	var raw any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	refs := 0
	var walk func(path, parent string, v any)
	walk = func(path, parent string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				// Keys of these maps are names, not keywords.
				named := parent == "properties" || parent == "definitions" || parent == "paths" || parent == "responses"
				switch {
				case named:
				case k == "$ref":
					refs++
					s, _ := c.(string)
					name, ok := strings.CutPrefix(s, v2DefinitionsRefPrefix)
					if _, defined := sw.Definitions[name]; !ok || !defined {
						t.Errorf("%s: dangling reference %q", path, s)
					}
				case slices.Contains([]string{"oneOf", "anyOf", "not", "nullable", "components", "requestBody", "content", "openapi"}, k):
					t.Errorf("%s: v3 keyword %q in the v2 document", path, k)
				}
				walk(path+"/"+k, k, c)
			}
		case []any:
			for i, c := range v {
				walk(fmt.Sprintf("%s/%d", path, i), "", c)
			}
		}
	}
	walk("", "", raw)
	if refs == 0 {
		t.Error("no references at all")
	}

	// A reference with a description beside it, as kubectl explain shows
	// fields: Deployment.spec → DeploymentSpec.
	spec := sw.Definitions["io.k8s.api.apps.v1.Deployment"].Properties["spec"]
	if spec.Ref.String() != "#/definitions/io.k8s.api.apps.v1.DeploymentSpec" || spec.Description == "" {
		t.Errorf("Deployment.spec = ref %q description %q", spec.Ref.String(), spec.Description)
	}
	// The apiserver's forms of IntOrString and Quantity.
	for _, name := range []string{"io.k8s.apimachinery.pkg.util.intstr.IntOrString", "io.k8s.apimachinery.pkg.api.resource.Quantity"} {
		d := sw.Definitions[name]
		if len(d.Type) != 1 || d.Type[0] != "string" {
			t.Errorf("%s: type %v, want string", name, d.Type)
		}
	}
	t.Logf("%d definitions, %d paths, %d references, %d bytes", len(sw.Definitions), len(sw.Paths.Paths), refs, len(body))
}

// TestV2Protobuf checks the protobuf encoding: it is gnostic's Document of
// the same JSON, and client-go's discovery client (the one kubectl uses)
// reads it.
func TestV2Protobuf(t *testing.T) {
	srv, _ := newV2Server(t)
	body := v2JSON(t, srv)
	for _, accept := range []string{mimeV2ProtobufAsked, mimeV2Protobuf, "application/json;q=0.5, " + mimeV2ProtobufAsked} {
		resp, pb := fetchV2(t, srv, "Accept", accept)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != mimeV2Protobuf {
			t.Fatalf("Accept %s: %d %s", accept, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var got openapi_v2.Document
		if err := proto.Unmarshal(pb, &got); err != nil {
			t.Fatalf("Accept %s: protobuf: %v", accept, err)
		}
		want, err := openapi_v2.ParseDocument(body)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, want) {
			t.Errorf("Accept %s: the protobuf document differs from the JSON one", accept)
		}
		// And back: the protobuf round-trips to itself.
		again, err := proto.Marshal(&got)
		if err != nil {
			t.Fatal(err)
		}
		var third openapi_v2.Document
		if err := proto.Unmarshal(again, &third); err != nil || !proto.Equal(&got, &third) {
			t.Errorf("protobuf round trip: %v", err)
		}
	}

	dc, err := discovery.NewDiscoveryClientForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := dc.OpenAPISchema()
	if err != nil {
		t.Fatalf("client-go OpenAPISchema: %v", err)
	}
	if _, err := protoopenapi.NewOpenAPIData(doc); err != nil {
		t.Fatalf("kubectl's models from client-go's document: %v", err)
	}
	if len(doc.GetDefinitions().GetAdditionalProperties()) == 0 || len(doc.GetPaths().GetPath()) == 0 {
		t.Error("client-go got an empty document")
	}
}

// TestV2HTTPBehaviour checks ETag and If-None-Match, gzip, HEAD, the 406
// for a media type neither JSON nor protobuf, and the method check.
func TestV2HTTPBehaviour(t *testing.T) {
	srv, _ := newV2Server(t)
	resp, body := fetchV2(t, srv)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("no Accept: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	etag := resp.Header.Get("ETag")
	if len(etag) < 3 || etag[0] != '"' {
		t.Fatalf("ETag %q", etag)
	}
	if vary := resp.Header.Values("Vary"); !slices.Contains(vary, "Accept") || !slices.Contains(vary, "Accept-Encoding") {
		t.Errorf("Vary %v", vary)
	}
	resp, b := fetchV2(t, srv, "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || len(b) != 0 {
		t.Errorf("If-None-Match with the ETag: %d, %d bytes", resp.StatusCode, len(b))
	}
	resp, _ = fetchV2(t, srv, "If-None-Match", `"stale"`)
	if resp.StatusCode != 200 {
		t.Errorf("If-None-Match with another ETag: %d", resp.StatusCode)
	}
	resp, pb := fetchV2(t, srv, "Accept", mimeV2ProtobufAsked, "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || len(pb) != 0 {
		t.Errorf("protobuf If-None-Match: %d", resp.StatusCode)
	}

	for _, accept := range []string{"application/json", mimeV2ProtobufAsked} {
		resp, gz := fetchV2(t, srv, "Accept", accept, "Accept-Encoding", "gzip")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("ETag") != etag {
			t.Fatalf("gzip %s: %d encoding %q etag %q", accept, resp.StatusCode, resp.Header.Get("Content-Encoding"), resp.Header.Get("ETag"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		_, want := fetchV2(t, srv, "Accept", accept)
		if !bytes.Equal(plain, want) {
			t.Errorf("gzip %s: decompressed body differs", accept)
		}
		t.Logf("%s: %d bytes, %d gzipped", accept, len(want), len(gz))
	}
	if !bytes.Equal(body, v2JSON(t, srv)) {
		t.Error("the document changed between requests")
	}

	resp, b = fetchV2(t, srv, "Accept", "text/html")
	if resp.StatusCode != http.StatusNotAcceptable || !strings.Contains(string(b), `"kind":"Status"`) {
		t.Errorf("Accept text/html: %d %s", resp.StatusCode, b)
	}
	resp, _ = fetchV2(t, srv, "Accept", "application/json;q=0")
	if resp.StatusCode != http.StatusNotAcceptable {
		t.Errorf("Accept json;q=0: %d", resp.StatusCode)
	}

	head, err := http.NewRequest(http.MethodHead, srv.URL+V2Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	hr, err := http.DefaultClient.Do(head)
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := io.ReadAll(hr.Body)
	hr.Body.Close()
	if hr.StatusCode != 200 || len(hb) != 0 || hr.Header.Get("ETag") != etag {
		t.Errorf("HEAD: %d, %d bytes, etag %q", hr.StatusCode, len(hb), hr.Header.Get("ETag"))
	}
	post, err := http.Post(srv.URL+V2Path, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", post.StatusCode)
	}
}

// hasGVKExtension is kubectl's test (cli-runtime's QueryParamVerifier) of
// whether an operation belongs to a kind: the extension, read as YAML.
func hasGVKExtension(exts []*openapi_v2.NamedAny, gvk schema.GroupVersionKind) bool {
	for _, e := range exts {
		if e.GetName() != extGVK {
			continue
		}
		var m map[string]string
		if err := yaml.Unmarshal([]byte(e.GetValue().GetYaml()), &m); err != nil {
			return false
		}
		if m["group"] == gvk.Group && m["version"] == gvk.Version && m["kind"] == gvk.Kind {
			return true
		}
	}
	return false
}

// v2SupportsQueryParam is cli-runtime's supportsQueryParam over a v2
// document: the first PATCH operation of the kind must list the parameter.
func v2SupportsQueryParam(doc *openapi_v2.Document, gvk schema.GroupVersionKind, param string) error {
	for _, p := range doc.GetPaths().GetPath() {
		op := p.GetValue().GetPatch()
		if op == nil || !hasGVKExtension(op.GetVendorExtension(), gvk) {
			continue
		}
		for _, prm := range op.GetParameters() {
			if prm.GetParameter().GetNonBodyParameter().GetQueryParameterSubSchema().GetName() == param {
				return nil
			}
		}
		return fmt.Errorf("%s: PATCH %s has no %s parameter", gvk, p.GetName(), param)
	}
	return fmt.Errorf("no PATCH operation for %s", gvk)
}

// TestV2QueryParameters checks what kubectl's QueryParamVerifier looks for
// (fieldValidation on every patchable kind's PATCH), and that POST, PUT
// and PATCH carry dryRun, fieldManager and fieldValidation, with the body
// parameter and consumes of each.
func TestV2QueryParameters(t *testing.T) {
	srv, reg := newV2Server(t)
	body := v2JSON(t, srv)
	doc, _ := kubectlModels(t, body)
	for _, res := range reg.All() {
		if !res.HasVerb("patch") {
			continue
		}
		if err := v2SupportsQueryParam(doc, res.GVK(), "fieldValidation"); err != nil {
			t.Error(err)
		}
	}
	var sw spec.Swagger
	if err := json.Unmarshal(body, &sw); err != nil {
		t.Fatal(err)
	}
	item := sw.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
	coll := sw.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments"]
	for what, op := range map[string]*spec.Operation{"PATCH": item.Patch, "PUT": item.Put, "POST": coll.Post} {
		if op == nil {
			t.Fatalf("no %s operation on deployments", what)
		}
		names := map[string]string{}
		for _, p := range op.Parameters {
			names[p.Name] = p.In
		}
		for _, want := range []string{"dryRun", "fieldManager", "fieldValidation"} {
			if names[want] != "query" {
				t.Errorf("%s deployments: no query parameter %s (%v)", what, want, names)
			}
		}
		if names["body"] != "body" {
			t.Errorf("%s deployments: no body parameter", what)
		}
		if action, _ := op.Extensions.GetString(extAction); action == "" {
			t.Errorf("%s deployments: no %s", what, extAction)
		}
	}
	if !slices.Contains(item.Patch.Consumes, ctStrategicPatch) || !slices.Contains(item.Patch.Consumes, ctApplyPatch) {
		t.Errorf("PATCH deployments consumes %v", item.Patch.Consumes)
	}
	if r, ok := item.Get.Responses.StatusCodeResponses[200]; !ok || r.Schema == nil || r.Schema.Ref.String() != "#/definitions/io.k8s.api.apps.v1.Deployment" {
		t.Errorf("GET deployment 200: %+v", r)
	}
	params := map[string]bool{}
	for _, p := range item.Parameters {
		params[p.Name+"/"+p.In+"/"+p.Type] = true
	}
	if !params["name/path/string"] || !params["namespace/path/string"] {
		t.Errorf("path parameters %v", params)
	}
}

// TestV2ClientSideValidation validates objects as kubectl does when the
// server does not validate fields itself (--validate=strict with an old
// server, or kubectl older than 1.25): the manifests users apply pass, an
// unknown field and a wrong type fail with the field named.
func TestV2ClientSideValidation(t *testing.T) {
	srv, _ := newV2Server(t)
	_, models := kubectlModels(t, v2JSON(t, srv))
	validate := func(model, manifest string) []error {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(manifest), &obj); err != nil {
			t.Fatal(err)
		}
		s := models.LookupModel(model)
		if s == nil {
			t.Fatalf("no model %s", model)
		}
		return protovalidation.ValidateModel(obj, s, model)
	}
	good := map[string]string{
		"io.k8s.api.apps.v1.Deployment": `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}, annotations: {a: b}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: web}}
    spec:
      runtimeClassName: wasm
      containers:
      - name: web
        image: example.com/web:1
        args: ["--port", "8080"]
        env: [{name: A, value: "1"}, {name: B, valueFrom: {configMapKeyRef: {name: cfg, key: b}}}]
        ports: [{containerPort: 8080, name: http}]
        resources: {limits: {cpu: 1, memory: 64Mi}, requests: {cpu: 100m}}
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 5}
`,
		"io.k8s.api.core.v1.Service": `
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}, {name: alt, port: 81, targetPort: http, protocol: TCP}]
`,
		"io.k8s.api.core.v1.ConfigMap": `
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {b: two}
binaryData: {c: aGVsbG8=}
`,
	}
	for model, m := range good {
		if errs := validate(model, m); len(errs) > 0 {
			t.Errorf("%s: %v", model, errs)
		}
	}
	bad := []struct{ model, manifest, want string }{
		{"io.k8s.api.apps.v1.Deployment", "apiVersion: apps/v1\nkind: Deployment\nspec: {replicaz: 2, selector: {}, template: {}}", `unknown field "replicaz"`},
		{"io.k8s.api.apps.v1.Deployment", "apiVersion: apps/v1\nkind: Deployment\nspec: {replicas: two, selector: {}, template: {}}", "replicas"},
		{"io.k8s.api.core.v1.Service", "apiVersion: v1\nkind: Service\nspec: {ports: [{targetPort: 80}]}", `missing required field "port"`},
	}
	for _, c := range bad {
		errs := validate(c.model, c.manifest)
		if len(errs) == 0 || !strings.Contains(fmt.Sprint(errs), c.want) {
			t.Errorf("%s %q: errors %v, want one naming %s", c.model, c.manifest, errs, c.want)
		}
	}
}

// TestV2PatchMetadata reads strategic-merge metadata from the v2 models as
// kubectl apply does: containers merge by name, and a three-way patch
// built from the document changes one container, not the list.
func TestV2PatchMetadata(t *testing.T) {
	srv, _ := newV2Server(t)
	_, models := kubectlModels(t, v2JSON(t, srv))
	pod := models.LookupModel("io.k8s.api.core.v1.PodSpec")
	if pod == nil {
		t.Fatal("no PodSpec model")
	}
	meta := strategicpatch.NewPatchMetaFromOpenAPI(pod)
	_, pm, err := meta.LookupPatchMetadataForSlice("containers")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pm.GetPatchStrategies(), []string{"merge"}) || pm.GetPatchMergeKey() != "name" {
		t.Errorf("containers: strategies %v key %q", pm.GetPatchStrategies(), pm.GetPatchMergeKey())
	}

	dep := models.LookupModel("io.k8s.api.apps.v1.Deployment")
	original := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"a:1"},{"name":"b","image":"b:1"}]}}}}`)
	modified := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"a:2"},{"name":"b","image":"b:1"}]}}}}`)
	current := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"a:1","imagePullPolicy":"IfNotPresent"},{"name":"b","image":"b:1"}]}}}}`)
	patch, err := strategicpatch.CreateThreeWayMergePatch(original, modified, current, strategicpatch.NewPatchMetaFromOpenAPI(dep), false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(patch), `"$setElementOrder/containers"`) || !strings.Contains(string(patch), `"image":"a:2"`) {
		t.Errorf("patch %s does not merge containers by name", patch)
	}
}

// TestV2FollowsRegistry adds resources after a first request, among them a
// kind with no Go type (a custom resource): the next document has their
// definitions and paths, kubectl still parses it, and the ETag changes.
func TestV2FollowsRegistry(t *testing.T) {
	s, err := resources.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	widget := schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}
	s.AddKnownTypeWithName(widget, &unstructured.Unstructured{})
	s.AddKnownTypeWithName(widget.GroupVersion().WithKind("WidgetList"), &unstructured.UnstructuredList{})
	reg, err := resources.New(s)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := listenV2(t, h)
	resp, before := fetchV2(t, srv)
	etag := resp.Header.Get("ETag")
	if strings.Contains(string(before), "com.example.v1.Widget") {
		t.Fatal("Widget before it was added")
	}
	if err := reg.Add(resources.Resource{Group: "example.com", Version: "v1", Resource: "widgets", Singular: "widget", Kind: "Widget", Namespaced: true}); err != nil {
		t.Fatal(err)
	}
	resp, after := fetchV2(t, srv, "If-None-Match", etag)
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == etag {
		t.Fatalf("after adding a resource: %d, ETag %s (was %s)", resp.StatusCode, resp.Header.Get("ETag"), etag)
	}
	doc, models := kubectlModels(t, after)
	if models.LookupModel("com.example.v1.Widget") == nil || models.LookupModel("com.example.v1.WidgetList") == nil {
		t.Error("no Widget models")
	}
	if err := v2SupportsQueryParam(doc, widget, "fieldValidation"); err != nil {
		t.Error(err)
	}
	var sw spec.Swagger
	if err := json.Unmarshal(after, &sw); err != nil {
		t.Fatal(err)
	}
	if sw.Paths.Paths["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"].Get == nil {
		t.Error("no widget path")
	}
	// An open schema keeps unknown fields, so kubectl must not see its
	// properties (it would reject spec as unknown).
	var obj map[string]any
	if err := yaml.Unmarshal([]byte("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 3}"), &obj); err != nil {
		t.Fatal(err)
	}
	if errs := protovalidation.ValidateModel(obj, models.LookupModel("com.example.v1.Widget"), "Widget"); len(errs) > 0 {
		t.Errorf("a Widget with a spec: %v", errs)
	}
}

// TestV2SchemaConversion feeds the converter the v3 constructs custom
// resource schemas use and the built-in documents do not.
func TestV2SchemaConversion(t *testing.T) {
	var in spec.Schema
	err := json.Unmarshal([]byte(`{
	  "type": "object",
	  "required": ["a", "n"],
	  "properties": {
	    "a": {"type": "string", "enum": ["x", "y"], "default": "x", "pattern": "^[xy]$", "maxLength": 1},
	    "n": {"type": "integer", "nullable": true, "minimum": 0},
	    "ios": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
	    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"k": {"type": "string"}}},
	    "list": {"type": "array", "x-kubernetes-preserve-unknown-fields": true, "items": {"type": "string"}},
	    "multi": {"type": ["string", "null"]},
	    "pp": {"type": "object", "patternProperties": {"^x": {"type": "string"}}, "additionalProperties": false},
	    "ref": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "description": "meta", "x-kubernetes-patch-strategy": "merge"},
	    "rules": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() < 10"}], "not": {"enum": ["z"]}}
	  }
	}`), &in)
	if err != nil {
		t.Fatal(err)
	}
	out := v2Schema(&in)
	p := out.Properties
	if !slices.Equal(out.Required, []string{"a"}) {
		t.Errorf("required %v: a nullable field must not be required", out.Required)
	}
	if a := p["a"]; a.Default != "x" || len(a.Enum) != 2 || a.Pattern == "" || a.MaxLength == nil {
		t.Errorf("a: validations lost: %+v", a.SchemaProps)
	}
	if n := p["n"]; len(n.Type) != 0 || n.Minimum == nil {
		t.Errorf("n: nullable keeps type %v", n.Type)
	}
	if ios := p["ios"]; len(ios.Type) != 0 || ios.AnyOf != nil {
		t.Errorf("ios: %+v", ios.SchemaProps)
	}
	if free := p["free"]; free.Properties != nil || len(free.Type) != 1 {
		t.Errorf("free: %+v", free.SchemaProps)
	}
	if l := p["list"]; l.Items != nil || len(l.Type) != 0 {
		t.Errorf("list: %+v", l.SchemaProps)
	}
	if m := p["multi"]; len(m.Type) != 0 {
		t.Errorf("multi: type %v", m.Type)
	}
	if pp := p["pp"]; pp.PatternProperties != nil || pp.AdditionalProperties == nil || pp.AdditionalProperties.Allows {
		t.Errorf("pp: %+v", pp.SchemaProps)
	}
	if r := p["ref"]; r.Ref.String() != "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" || r.Description != "meta" || r.AllOf != nil {
		t.Errorf("ref: %+v", r.SchemaProps)
	} else if s, _ := r.Extensions.GetString(extPatchStrategy); s != "merge" {
		t.Errorf("ref: patch strategy %q", s)
	}
	if r := p["rules"]; r.Not != nil || r.Extensions["x-kubernetes-validations"] == nil {
		t.Errorf("rules: %+v", r)
	}
	// The result is a schema gnostic and kubectl read.
	body, err := json.Marshal(&spec.Swagger{SwaggerProps: spec.SwaggerProps{
		Swagger: "2.0", Info: &spec.Info{InfoProps: spec.InfoProps{Title: "t", Version: "v"}}, Paths: &spec.Paths{Paths: map[string]spec.PathItem{}},
		Definitions: spec.Definitions{"t": out, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"object"}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	kubectlModels(t, body)
}

// TestV2BuildTime reports what building the v2 document and its
// encodings costs, once per registry change.
func TestV2BuildTime(t *testing.T) {
	s, err := resources.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := resources.New(s)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, _, err := h.current(); err != nil {
		t.Fatal(err)
	}
	v3 := time.Since(start)
	for _, enc := range []string{"json", "protobuf", "json+gzip", "protobuf+gzip"} {
		start := time.Now()
		e, err := h.v2Encoded(enc)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("v2 %s: %d bytes in %v (v3 documents built first in %v)", enc, len(e.body), time.Since(start), v3)
	}
	start = time.Now()
	if _, err := h.v2Encoded("protobuf"); err != nil {
		t.Fatal(err)
	}
	t.Logf("cached v2 protobuf: %v", time.Since(start))
}

// TestV2ConcurrentRequestsDuringChange fetches the document from many
// goroutines, released together, in JSON and protobuf, while a resource is
// added to the registry: every answer parses, and every JSON answer's ETag
// is the hash of that very body (a rebuild never pairs one document's ETag
// with another's bytes).
func TestV2ConcurrentRequestsDuringChange(t *testing.T) {
	s, err := resources.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := resources.New(s)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := listenV2(t, h)
	const workers, rounds = 8, 3
	start := make(chan struct{})
	errs := make(chan error, workers*rounds+1)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			client := &http.Client{Timeout: 60 * time.Second}
			for r := 0; r < rounds; r++ {
				accept := mimeV2JSON
				if (i+r)%2 == 1 {
					accept = mimeV2ProtobufAsked
				}
				req, _ := http.NewRequest(http.MethodGet, srv.URL+V2Path, nil)
				req.Header.Set("Accept", accept)
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					errs <- fmt.Errorf("%s: %d %v", accept, resp.StatusCode, err)
					return
				}
				if accept == mimeV2JSON {
					if want := strconv.Quote(fmt.Sprintf("%X", sha512.Sum512(body))); resp.Header.Get("ETag") != want {
						errs <- fmt.Errorf("ETag %s is not the body's hash", resp.Header.Get("ETag"))
					}
					if _, err := openapi_v2.ParseDocument(body); err != nil {
						errs <- err
					}
				} else {
					var doc openapi_v2.Document
					if err := proto.Unmarshal(body, &doc); err != nil || len(doc.GetDefinitions().GetAdditionalProperties()) == 0 {
						errs <- fmt.Errorf("protobuf: %v", err)
					}
				}
			}
		}()
	}
	close(start)
	if err := reg.Add(resources.Resource{Version: "v1", Resource: "podtemplates", Singular: "podtemplate", Kind: "PodTemplate", Namespaced: true}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	sw, err := h.V2()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sw.Paths.Paths["/api/v1/namespaces/{namespace}/podtemplates/{name}"]; !ok {
		t.Error("the document after the change has no podtemplates")
	}
}
