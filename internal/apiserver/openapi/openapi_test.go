package openapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/openapi3"
	"k8s.io/client-go/rest"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// newServer serves a fresh handler over the built-in resource table.
func newServer(t *testing.T) (*httptest.Server, *resources.Table) {
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
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, reg
}

type index struct {
	Paths map[string]struct {
		ServerRelativeURL string `json:"serverRelativeURL"`
	} `json:"paths"`
}

func get(t *testing.T, u string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	// Redirects are checked, not followed.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
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

func fetchIndex(t *testing.T, srv *httptest.Server) index {
	t.Helper()
	resp, body := get(t, srv.URL+"/openapi/v3")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("index: %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var idx index
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatalf("index: %v", err)
	}
	return idx
}

// fetchDoc returns one document, raw and parsed both as spec3.OpenAPI and
// as plain JSON.
func fetchDoc(t *testing.T, srv *httptest.Server, idx index, key string) (*spec3.OpenAPI, map[string]any) {
	t.Helper()
	e, ok := idx.Paths[key]
	if !ok {
		t.Fatalf("index has no %s", key)
	}
	resp, body := get(t, srv.URL+e.ServerRelativeURL, "Accept", "application/json")
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d: %s", key, resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("%s: Cache-Control %q with a matching hash", key, cc)
	}
	var doc spec3.OpenAPI
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("%s: spec3: %v", key, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return &doc, raw
}

func gvKey(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

// TestIndexListsEveryGroupVersion checks the index against the registry and
// every document for well-formedness: it parses as spec3.OpenAPI, every
// $ref resolves inside it, and every resource has its paths.
func TestIndexListsEveryGroupVersion(t *testing.T) {
	srv, reg := newServer(t)
	idx := fetchIndex(t, srv)

	var want, got []string
	for _, g := range reg.Groups() {
		for _, v := range g.Versions {
			want = append(want, gvKey(schema.GroupVersion{Group: g.Group, Version: v}))
		}
	}
	for k := range idx.Paths {
		got = append(got, k)
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(want, got) {
		t.Fatalf("index paths %v, want %v", got, want)
	}
	for _, k := range []string{"api/v1", "apis/apps/v1", "apis/batch/v1"} {
		if !slices.Contains(got, k) {
			t.Errorf("index lacks %s", k)
		}
	}

	largest, largestKey := 0, ""
	for key, e := range idx.Paths {
		u, err := url.Parse(e.ServerRelativeURL)
		if err != nil || u.Path != "/openapi/v3/"+key || len(u.Query().Get("hash")) != 128 {
			t.Errorf("%s: serverRelativeURL %q", key, e.ServerRelativeURL)
		}
		doc, raw := fetchDoc(t, srv, idx, key)
		if doc.Version != "3.0.0" || doc.Info == nil || doc.Info.Title != "Kubernetes" || doc.Info.Version != kubernetesVersion {
			t.Errorf("%s: header %q %+v", key, doc.Version, doc.Info)
		}
		if n := len(mustJSON(t, raw)); n > largest {
			largest, largestKey = n, key
		}
		checkRefs(t, key, raw)

		gv := schema.GroupVersion{Group: strings.TrimPrefix(strings.TrimPrefix(key, "apis/"), "api"), Version: key[strings.LastIndex(key, "/")+1:]}
		if i := strings.LastIndex(gv.Group, "/"); i >= 0 {
			gv.Group = gv.Group[:i]
		}
		for _, res := range reg.InGroupVersion(gv) {
			checkResourcePaths(t, doc, res)
		}
	}
	t.Logf("largest document: %s, %d bytes", largestKey, largest)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkRefs walks a whole document and checks that each $ref names a schema
// of the same document.
func checkRefs(t *testing.T, key string, raw map[string]any) {
	t.Helper()
	comps, _ := raw["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	if len(schemas) == 0 {
		t.Fatalf("%s: no components.schemas", key)
	}
	n := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "$ref" {
					s, isRef := x.(string)
					if !isRef {
						// A property named "$ref" (JSONSchemaProps has one), not a reference.
						walk(x)
						continue
					}
					n++
					name, ok := strings.CutPrefix(s, "#/components/schemas/")
					if _, found := schemas[name]; !ok || !found {
						t.Errorf("%s: dangling $ref %q", key, s)
					}
					continue
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(raw)
	if n == 0 {
		t.Errorf("%s: no $ref at all", key)
	}
}

// checkResourcePaths checks that a resource has the paths and operations
// of its verbs, each carrying its GVK, and that every write takes the
// query parameters kubectl sends.
func checkResourcePaths(t *testing.T, doc *spec3.OpenAPI, res *resources.Resource) {
	t.Helper()
	prefix := "/" + gvKey(schema.GroupVersion{Group: res.Group, Version: res.Version})
	coll := prefix + "/" + res.Resource
	if res.Namespaced {
		coll = prefix + "/namespaces/{namespace}/" + res.Resource
		if p := doc.Paths.Paths[prefix+"/"+res.Resource]; p == nil || p.Get == nil {
			t.Errorf("%s: no all-namespaces list", res.GVR())
		}
	}
	item := coll + "/{name}"
	c, i := doc.Paths.Paths[coll], doc.Paths.Paths[item]
	if c == nil || i == nil {
		t.Fatalf("%s: missing %s or %s", res.GVR(), coll, item)
	}
	ops := map[string]*spec3.Operation{"list": c.Get, "create": c.Post, "deletecollection": c.Delete,
		"get": i.Get, "update": i.Put, "patch": i.Patch, "delete": i.Delete}
	for verb, op := range ops {
		if res.HasVerb(verb) != (op != nil) {
			t.Errorf("%s: verb %s: operation %v", res.GVR(), verb, op != nil)
			continue
		}
		if op == nil {
			continue
		}
		if !hasGVK(op.Extensions, res.GVK()) {
			t.Errorf("%s %s: GVK extension %v", res.GVR(), verb, op.Extensions[extGVK])
		}
		if op.OperationId == "" || op.Extensions[extAction] == nil {
			t.Errorf("%s %s: no operationId or action", res.GVR(), verb)
		}
		switch verb {
		case "create", "update", "patch":
			for _, p := range []string{"fieldValidation", "dryRun", "fieldManager"} {
				if !hasParam(op, p) {
					t.Errorf("%s %s: no %s parameter", res.GVR(), verb, p)
				}
			}
		}
	}
	for _, sub := range res.Subresources {
		if doc.Paths.Paths[item+"/"+sub.Name] == nil {
			t.Errorf("%s: no path for subresource %s", res.GVR(), sub.Name)
		}
	}
}

func hasGVK(ext spec.Extensions, gvk schema.GroupVersionKind) bool {
	var m map[string]string
	if err := ext.GetObject(extGVK, &m); err != nil {
		return false
	}
	return m["group"] == gvk.Group && m["version"] == gvk.Version && m["kind"] == gvk.Kind
}

func hasGVKList(ext spec.Extensions, gvk schema.GroupVersionKind) bool {
	var l []map[string]string
	if err := ext.GetObject(extGVK, &l); err != nil {
		return false
	}
	for _, m := range l {
		if m["group"] == gvk.Group && m["version"] == gvk.Version && m["kind"] == gvk.Kind {
			return true
		}
	}
	return false
}

func hasParam(op *spec3.Operation, name string) bool {
	for _, p := range op.Parameters {
		if p.Name == name && p.In == "query" && p.Schema != nil && len(p.Schema.Type) == 1 {
			return true
		}
	}
	return false
}

// resolve follows a property to the component it refers to, directly or
// through the allOf wrapper that carries the field's description.
func resolve(t *testing.T, schemas map[string]*spec.Schema, s spec.Schema) (string, *spec.Schema) {
	t.Helper()
	if len(s.AllOf) == 1 {
		s = s.AllOf[0]
	}
	name, ok := strings.CutPrefix(s.Ref.String(), "#/components/schemas/")
	if !ok || schemas[name] == nil {
		t.Fatalf("not a resolvable reference: %q", s.Ref.String())
	}
	return name, schemas[name]
}

// TestAppsV1Document checks what kubectl apply, edit and explain read from
// the apps/v1 document.
func TestAppsV1Document(t *testing.T) {
	srv, _ := newServer(t)
	doc, _ := fetchDoc(t, srv, fetchIndex(t, srv), "apis/apps/v1")
	deployGVK := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}

	p := doc.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
	if p == nil || p.Patch == nil {
		t.Fatal("no PATCH on the deployment item path")
	}
	if p.Patch.OperationId != "patchAppsV1NamespacedDeployment" || !hasGVK(p.Patch.Extensions, deployGVK) {
		t.Errorf("patch op %s %v", p.Patch.OperationId, p.Patch.Extensions)
	}
	for _, q := range []string{"fieldValidation", "dryRun", "fieldManager", "force"} {
		if !hasParam(p.Patch, q) {
			t.Errorf("patch lacks parameter %s", q)
		}
	}
	for _, ct := range []string{ctJSONPatch, ctMergePatch, ctStrategicPatch, ctApplyPatch} {
		mt := p.Patch.RequestBody.Content[ct]
		if mt == nil || mt.Schema.Ref.String() != "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch" {
			t.Errorf("patch content %s: %+v", ct, mt)
		}
	}
	if r := p.Get.Responses.StatusCodeResponses[200]; r == nil ||
		r.Content["application/json"].Schema.Ref.String() != "#/components/schemas/io.k8s.api.apps.v1.Deployment" {
		t.Errorf("read response %+v", r)
	}
	scale := doc.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
	if scale == nil || scale.Patch == nil || !hasGVK(scale.Patch.Extensions, schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}) {
		t.Errorf("scale subresource %+v", scale)
	}
	if st := doc.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]; st == nil || st.Put == nil ||
		st.Put.OperationId != "replaceAppsV1NamespacedDeploymentStatus" || !hasGVK(st.Put.Extensions, deployGVK) {
		t.Errorf("status subresource %+v", st)
	}
	if l := doc.Paths.Paths["/apis/apps/v1/deployments"]; l == nil || l.Get.OperationId != "listAppsV1DeploymentForAllNamespaces" {
		t.Errorf("all-namespaces list %+v", l)
	}

	schemas := doc.Components.Schemas
	dep := schemas["io.k8s.api.apps.v1.Deployment"]
	if dep == nil || !hasGVKList(dep.Extensions, deployGVK) || dep.Description == "" {
		t.Fatalf("Deployment schema %+v", dep)
	}
	for _, f := range []string{"apiVersion", "kind", "metadata", "spec", "status"} {
		if dep.Properties[f].Description == "" {
			t.Errorf("Deployment.%s has no description", f)
		}
	}
	if name, _ := resolve(t, schemas, dep.Properties["metadata"]); name != "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" {
		t.Errorf("metadata → %s", name)
	}
	name, spc := resolve(t, schemas, dep.Properties["spec"])
	if name != "io.k8s.api.apps.v1.DeploymentSpec" {
		t.Fatalf("spec → %s", name)
	}
	if !slices.Contains(spc.Required, "selector") || !slices.Contains(spc.Required, "template") || slices.Contains(spc.Required, "replicas") {
		t.Errorf("DeploymentSpec required %v", spc.Required)
	}
	if r := spc.Properties["replicas"]; r.Type[0] != "integer" || r.Format != "int32" {
		t.Errorf("replicas %+v", r)
	}
	name, strategy := resolve(t, schemas, spc.Properties["strategy"])
	if name != "io.k8s.api.apps.v1.DeploymentStrategy" {
		t.Fatalf("strategy → %s", name)
	}
	for _, f := range []string{"type", "rollingUpdate"} {
		if strategy.Properties[f].Description == "" {
			t.Errorf("DeploymentStrategy.%s has no description", f)
		}
	}
	_, ru := resolve(t, schemas, strategy.Properties["rollingUpdate"])
	if n, ios := resolve(t, schemas, ru.Properties["maxSurge"]); n != "io.k8s.apimachinery.pkg.util.intstr.IntOrString" ||
		ios.Extensions[extIntOrString] != true || len(ios.OneOf) != 2 {
		t.Errorf("maxSurge → %s %+v", n, ios)
	}

	_, tmpl := resolve(t, schemas, spc.Properties["template"])
	_, pod := resolve(t, schemas, tmpl.Properties["spec"])
	containers := pod.Properties["containers"]
	if containers.Extensions[extPatchMergeKey] != "name" || containers.Extensions[extPatchStrategy] != "merge" || containers.Type[0] != "array" {
		t.Errorf("PodSpec.containers %+v", containers)
	}
	if v := pod.Properties["volumes"].Extensions[extPatchStrategy]; v != "merge,retainKeys" {
		t.Errorf("PodSpec.volumes strategy %v", v)
	}
	cname, container := resolve(t, schemas, *containers.Items.Schema)
	if cname != "io.k8s.api.core.v1.Container" || !slices.Contains(container.Required, "name") {
		t.Errorf("containers items → %s, required %v", cname, container.Required)
	}
	_, resources := resolve(t, schemas, container.Properties["resources"])
	if q := resources.Properties["limits"].AdditionalProperties; q == nil || q.Schema.Ref.String() != "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity" {
		t.Errorf("limits %+v", resources.Properties["limits"])
	}
	if q := schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]; q == nil || len(q.OneOf) != 2 || q.Description == "" {
		t.Errorf("Quantity %+v", q)
	}
	_, meta := resolve(t, schemas, dep.Properties["metadata"])
	if n, ts := resolve(t, schemas, meta.Properties["creationTimestamp"]); n != "io.k8s.apimachinery.pkg.apis.meta.v1.Time" ||
		ts.Type[0] != "string" || ts.Format != "date-time" {
		t.Errorf("creationTimestamp → %s %+v", n, ts)
	}
	if ann := meta.Properties["annotations"]; ann.Type[0] != "object" || ann.AdditionalProperties.Schema.Type[0] != "string" {
		t.Errorf("annotations %+v", ann)
	}
	if list := schemas["io.k8s.api.apps.v1.DeploymentList"]; list == nil || !hasGVKList(list.Extensions, deployGVK.GroupVersion().WithKind("DeploymentList")) {
		t.Errorf("DeploymentList %+v", list)
	}
}

// TestCoreV1Document spot-checks the core group: cluster-scoped paths,
// subresources with their own kinds, and byte and streaming fields.
func TestCoreV1Document(t *testing.T) {
	srv, _ := newServer(t)
	doc, _ := fetchDoc(t, srv, fetchIndex(t, srv), "api/v1")
	node := doc.Paths.Paths["/api/v1/nodes/{name}"]
	if node == nil || node.Patch == nil || node.Patch.OperationId != "patchCoreV1Node" ||
		!hasGVK(node.Patch.Extensions, schema.GroupVersionKind{Version: "v1", Kind: "Node"}) {
		t.Errorf("node item %+v", node)
	}
	if doc.Paths.Paths["/api/v1/namespaces/{namespace}/nodes"] != nil {
		t.Error("cluster-scoped nodes under a namespace")
	}
	ev := doc.Paths.Paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]
	if ev == nil || ev.Post == nil || !hasGVK(ev.Post.Extensions, schema.GroupVersionKind{Group: "policy", Version: "v1", Kind: "Eviction"}) ||
		doc.Components.Schemas["io.k8s.api.policy.v1.Eviction"] == nil {
		t.Errorf("eviction %+v", ev)
	}
	if ex := doc.Paths.Paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"]; ex == nil || ex.Get == nil ||
		ex.Get.OperationId != "connectCoreV1GetNamespacedPodExec" {
		t.Errorf("exec %+v", ex)
	}
	if lg := doc.Paths.Paths["/api/v1/namespaces/{namespace}/pods/{name}/log"]; lg == nil || lg.Get == nil || lg.Get.OperationId != "readCoreV1NamespacedPodLog" {
		t.Errorf("log %+v", lg)
	}
	cm := doc.Components.Schemas["io.k8s.api.core.v1.ConfigMap"]
	if bd := cm.Properties["binaryData"].AdditionalProperties.Schema; bd.Type[0] != "string" || bd.Format != "byte" {
		t.Errorf("binaryData values %+v", bd)
	}
	if st := doc.Components.Schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Status"]; st == nil ||
		!hasGVKList(st.Extensions, schema.GroupVersionKind{Version: "v1", Kind: "Status"}) {
		t.Errorf("Status %+v", st)
	}
}

// TestHTTPBehaviour covers errors, caching headers and content negotiation.
func TestHTTPBehaviour(t *testing.T) {
	srv, _ := newServer(t)
	idx := fetchIndex(t, srv)

	for _, p := range []string{"/openapi/v3/apis/nope/v1", "/openapi/v3/api/v2", "/openapi/v3x", "/openapi/v3/apis/apps"} {
		resp, body := get(t, srv.URL+p)
		var st metav1.Status
		if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != 404 || st.Kind != "Status" || st.APIVersion != "v1" ||
			st.Status != metav1.StatusFailure || st.Reason != metav1.StatusReasonNotFound || st.Code != 404 || st.Message == "" {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/openapi/v3", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	resp, _ := get(t, srv.URL+"/openapi/v3")
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-cache") {
		t.Errorf("index Cache-Control %q", cc)
	}
	u := idx.Paths["apis/apps/v1"].ServerRelativeURL
	hash := u[strings.Index(u, "hash=")+5:]

	resp, body := get(t, srv.URL+"/openapi/v3/apis/apps/v1")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "no-cache") || resp.Header.Get("ETag") != `"`+hash+`"` {
		t.Errorf("without hash: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = get(t, srv.URL+u)
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "public") || !strings.Contains(cc, "immutable") || !strings.Contains(cc, "max-age=") {
		t.Errorf("with hash: Cache-Control %q", cc)
	}
	resp, _ = get(t, srv.URL+"/openapi/v3/apis/apps/v1?hash=0123", "Accept", "application/json")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != u {
		t.Errorf("stale hash: %d → %q, want %q", resp.StatusCode, resp.Header.Get("Location"), u)
	}
	resp, notModified := get(t, srv.URL+u, "If-None-Match", `"`+hash+`"`)
	if resp.StatusCode != http.StatusNotModified || len(notModified) != 0 {
		t.Errorf("If-None-Match: %d, %d bytes", resp.StatusCode, len(notModified))
	}
	resp, _ = get(t, srv.URL+u, "Accept", "application/com.github.proto-openapi.spec.v3@v1.0+protobuf")
	if resp.StatusCode != http.StatusNotAcceptable {
		t.Errorf("protobuf only: %d", resp.StatusCode)
	}
	resp, _ = get(t, srv.URL+u, "Accept", "application/com.github.proto-openapi.spec.v3@v1.0+protobuf, application/json;q=0.5")
	if resp.StatusCode != 200 {
		t.Errorf("protobuf or json: %d", resp.StatusCode)
	}
	if len(body) == 0 {
		t.Error("empty document")
	}
}

// TestClientGoReadsDocuments uses client-go's OpenAPI v3 client, the code
// kubectl runs for apply, edit and explain, against the handler.
func TestClientGoReadsDocuments(t *testing.T) {
	srv, reg := newServer(t)
	dc, err := discovery.NewDiscoveryClientForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	root := openapi3.NewRoot(dc.OpenAPIV3())
	gvs, err := root.GroupVersions()
	if err != nil {
		t.Fatal(err)
	}
	if len(gvs) != len(idxKeys(reg)) {
		t.Errorf("client-go sees %v", gvs)
	}
	for _, gv := range gvs {
		doc, err := root.GVSpec(gv)
		if err != nil {
			t.Fatalf("%s: %v", gv, err)
		}
		// What kubectl's query parameter verifier does before apply,
		// create -f and edit (--validate=strict needs fieldValidation).
		for _, res := range reg.InGroupVersion(gv) {
			if err := supportsFieldValidation(doc, res.GVK()); err != nil {
				t.Error(err)
			}
		}
		if _, err := root.GVSpecAsMap(gv); err != nil {
			t.Fatalf("%s as map: %v", gv, err)
		}
	}
	doc, err := root.GVSpec(schema.GroupVersion{Group: "apps", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if doc.Components.Schemas["io.k8s.api.apps.v1.DeploymentStrategy"] == nil {
		t.Error("client-go's parse lost the schemas")
	}
}

func idxKeys(reg *resources.Table) []string {
	var out []string
	for _, g := range reg.Groups() {
		for _, v := range g.Versions {
			out = append(out, gvKey(schema.GroupVersion{Group: g.Group, Version: v}))
		}
	}
	return out
}

// supportsFieldValidation mirrors kubectl's check: some PATCH operation
// carries the GVK and lists the fieldValidation query parameter.
func supportsFieldValidation(doc *spec3.OpenAPI, gvk schema.GroupVersionKind) error {
	for _, p := range doc.Paths.Paths {
		if p == nil || p.Patch == nil || !hasGVK(p.Patch.Extensions, gvk) {
			continue
		}
		for _, param := range p.Patch.Parameters {
			if param != nil && param.Name == "fieldValidation" {
				return nil
			}
		}
	}
	return fmt.Errorf("%s: no PATCH with fieldValidation", gvk)
}

// TestStrategicMergePatchFromDocument computes kubectl apply's three-way
// patch from the document (what kubectl does when the document advertises
// strategic merge patch) and from the Go type (what it does otherwise):
// they must agree, or advertising it would change what apply sends.
func TestStrategicMergePatchFromDocument(t *testing.T) {
	srv, _ := newServer(t)
	doc, _ := fetchDoc(t, srv, fetchIndex(t, srv), "apis/apps/v1")

	var depSchema *spec.Schema
	for _, s := range doc.Components.Schemas {
		if hasGVKList(s.Extensions, schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}) {
			depSchema = s
		}
	}
	if depSchema == nil {
		t.Fatal("no schema with the Deployment GVK")
	}
	fromDoc := strategicpatch.PatchMetaFromOpenAPIV3{Schema: depSchema, SchemaList: doc.Components.Schemas}
	fromStruct, err := strategicpatch.NewPatchMetaFromStruct(&appsv1.Deployment{})
	if err != nil {
		t.Fatal(err)
	}

	mk := func(replicas int32, image string, ports []int32, env map[string]string, ann map[string]string) []byte {
		c := corev1.Container{Name: "web", Image: image}
		for _, p := range ports {
			c.Ports = append(c.Ports, corev1.ContainerPort{ContainerPort: p, Protocol: corev1.ProtocolTCP})
		}
		for _, k := range sortedKeys(env) {
			c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: env[k]})
		}
		d := appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Annotations: ann, Finalizers: []string{"a"}},
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
					RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: ptr(intstr.FromString("25%"))}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{c, {Name: "sidecar", Image: "busybox"}},
						Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}},
				},
			},
		}
		b, err := json.Marshal(&d)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	original := mk(1, "nginx:1.25", []int32{80, 443}, map[string]string{"A": "1", "B": "2"}, map[string]string{"x": "1"})
	modified := mk(3, "nginx:1.26", []int32{80}, map[string]string{"A": "1", "C": "3"}, map[string]string{"y": "2"})
	current := mk(2, "nginx:1.25", []int32{80, 443, 8080}, map[string]string{"A": "1", "B": "2", "D": "4"}, map[string]string{"x": "1", "z": "9"})

	want, err := strategicpatch.CreateThreeWayMergePatch(original, modified, current, fromStruct, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := strategicpatch.CreateThreeWayMergePatch(original, modified, current, fromDoc, true)
	if err != nil {
		t.Fatalf("patch from the OpenAPI document: %v", err)
	}
	if !jsonEqual(t, want, got) {
		t.Errorf("patches differ:\nstruct:  %s\ndocument: %s", want, got)
	}
	if !strings.Contains(string(got), "$setElementOrder/containers") {
		t.Errorf("no merge-by-key on containers: %s", got)
	}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func ptr[T any](v T) *T { return &v }

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return string(mustJSON(t, x)) == string(mustJSON(t, y))
}

// TestRegistryChanges checks that a resource added later appears, that only
// the documents of changed group versions get a new hash, and that a kind
// without a Go type (a custom resource) gets an open schema without
// strategic merge patch.
func TestRegistryChanges(t *testing.T) {
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
	srv := httptest.NewServer(h)
	defer srv.Close()
	before := fetchIndex(t, srv)

	if err := reg.Add(resources.Resource{Version: "v1", Resource: "podtemplates", Singular: "podtemplate", Kind: "PodTemplate", Namespaced: true}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Add(resources.Resource{Group: "example.com", Version: "v1", Resource: "widgets", Singular: "widget", Kind: "Widget", Namespaced: true}); err != nil {
		t.Fatal(err)
	}
	after := fetchIndex(t, srv)
	if before.Paths["apis/apps/v1"] != after.Paths["apis/apps/v1"] {
		t.Error("apps/v1 changed though its resources did not")
	}
	if before.Paths["api/v1"] == after.Paths["api/v1"] {
		t.Error("api/v1 kept its hash after podtemplates were added")
	}
	core, _ := fetchDoc(t, srv, after, "api/v1")
	if core.Paths.Paths["/api/v1/namespaces/{namespace}/podtemplates/{name}"] == nil {
		t.Error("no podtemplates path")
	}
	doc, raw := fetchDoc(t, srv, after, "apis/example.com/v1")
	checkRefs(t, "apis/example.com/v1", raw)
	p := doc.Paths.Paths["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]
	if p == nil || p.Patch == nil || !hasGVK(p.Patch.Extensions, widget) || supportsFieldValidation(doc, widget) != nil {
		t.Fatalf("widget path %+v", p)
	}
	if _, smp := p.Patch.RequestBody.Content[ctStrategicPatch]; smp {
		t.Error("strategic merge patch advertised for a kind without a schema")
	}
	if _, merge := p.Patch.RequestBody.Content[ctMergePatch]; !merge {
		t.Error("no merge patch for the custom kind")
	}
	ws := doc.Components.Schemas["com.example.v1.Widget"]
	if ws == nil || !hasGVKList(ws.Extensions, widget) || ws.Extensions[extPreserve] != true {
		t.Errorf("Widget schema %+v", ws)
	}
}

// TestDeterministicAndConcurrent builds the documents from many goroutines
// at once on one handler, and on a second handler, and expects one result.
func TestDeterministicAndConcurrent(t *testing.T) {
	srv1, _ := newServer(t)
	srv2, _ := newServer(t)
	var wg sync.WaitGroup
	results := make([]index, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(srv1.URL + "/openapi/v3")
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			if err := json.NewDecoder(resp.Body).Decode(&results[i]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	other := fetchIndex(t, srv2)
	for i, r := range results {
		if len(r.Paths) == 0 || fmt.Sprint(r.Paths) != fmt.Sprint(other.Paths) {
			t.Fatalf("result %d differs", i)
		}
	}
}

// TestBuildTime reports the cost of building every document.
func TestBuildTime(t *testing.T) {
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
	docs, _, err := h.current()
	if err != nil {
		t.Fatal(err)
	}
	total, largest := 0, 0
	for _, d := range docs {
		total += len(d.body)
		largest = max(largest, len(d.body))
	}
	t.Logf("built %d documents in %v: %d bytes in all, largest %d", len(docs), time.Since(start), total, largest)
}

func TestNewRejectsNil(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

// TestOddResourcesDoNotPanic serves resources the built-in table never has:
// a group that shortens to nothing, a kind named List, subresources with
// unknown kinds and verbs. The documents must still be well-formed.
func TestOddResourcesDoNotPanic(t *testing.T) {
	s, err := resources.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	odd := []schema.GroupVersionKind{
		{Group: ".k8s.io", Version: "v1", Kind: "Thing"},
		{Group: "weird-group.example", Version: "v0alpha0", Kind: "List"},
	}
	for _, gvk := range odd {
		s.AddKnownTypeWithName(gvk, &unstructured.Unstructured{})
		s.AddKnownTypeWithName(gvk.GroupVersion().WithKind(gvk.Kind+"List"), &unstructured.UnstructuredList{})
	}
	reg, err := resources.New(s)
	if err != nil {
		t.Fatal(err)
	}
	for i, gvk := range odd {
		err := reg.Add(resources.Resource{Group: gvk.Group, Version: gvk.Version, Resource: fmt.Sprintf("odd%d", i), Kind: gvk.Kind,
			Namespaced: i == 0, Verbs: []string{"get", "patch", "frobnicate"},
			Subresources: []resources.Subresource{
				{Name: "status", Verbs: []string{"get", "patch", "update"}},
				{Name: "mystery", Group: "nowhere.example", Version: "v9", Kind: "Mystery", Verbs: []string{"create", "zap"}},
				{Name: "exec", Verbs: []string{"get", "create", "delete"}},
			}})
		if err != nil {
			t.Fatal(err)
		}
	}
	h, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	idx := fetchIndex(t, srv)
	for _, gvk := range odd {
		key := gvKey(gvk.GroupVersion())
		doc, raw := fetchDoc(t, srv, idx, key)
		checkRefs(t, key, raw)
		if err := supportsFieldValidation(doc, gvk); err != nil {
			t.Error(err)
		}
	}
}
