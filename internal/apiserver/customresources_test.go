package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

var widgetsGVR = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}

// widgetCRD is a namespaced CRD with what the acceptance asks for: a
// schema with defaults, an enum, bounds, a pattern, printer columns,
// shortNames, the "all" category, status and scale subresources.
func widgetCRD() *apiextensionsv1.CustomResourceDefinition {
	props := map[string]apiextensionsv1.JSONSchemaProps{
		"replicas": {Type: "integer", Minimum: ptr.To(0.0), Maximum: ptr.To(10.0), Default: &apiextensionsv1.JSON{Raw: []byte("1")}},
		"color":    {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"red"`)}, {Raw: []byte(`"blue"`)}}, Default: &apiextensionsv1.JSON{Raw: []byte(`"red"`)}},
		"host":     {Type: "string", Pattern: `^[a-z.]+$`},
		"selector": {Type: "string"},
	}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget",
				ShortNames: []string{"wd"}, Categories: []string{"all"}},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec":   {Type: "object", Properties: props, Required: []string{"host"}},
						"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"replicas": {Type: "integer"}, "phase": {Type: "string"}}},
					},
				}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{
					Status: &apiextensionsv1.CustomResourceSubresourceStatus{},
					Scale: &apiextensionsv1.CustomResourceSubresourceScale{SpecReplicasPath: ".spec.replicas",
						StatusReplicasPath: ".status.replicas", LabelSelectorPath: ptr.To(".spec.selector")},
				},
				AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
					{Name: "Replicas", Type: "integer", JSONPath: ".spec.replicas"},
					{Name: "Color", Type: "string", JSONPath: ".spec.color"},
					{Name: "Phase", Type: "string", JSONPath: ".status.phase"},
				},
			}},
		},
	}
}

func createCRD(t *testing.T, cfg *rest.Config, c *apiextensionsv1.CustomResourceDefinition) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	ctx := context.Background()
	out, err := apiextensionsclient.NewForConfigOrDie(cfg).ApiextensionsV1().CustomResourceDefinitions().Create(ctx, c, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create CRD: %v", err)
	}
	return out
}

func widget(name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": name}, "spec": spec,
	}}
}

func TestCRDEstablishedAndDiscovered(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	out := createCRD(t, cfg, widgetCRD())
	for _, typ := range []apiextensionsv1.CustomResourceDefinitionConditionType{apiextensionsv1.NamesAccepted, apiextensionsv1.Established} {
		found := false
		for _, c := range out.Status.Conditions {
			found = found || (c.Type == typ && c.Status == apiextensionsv1.ConditionTrue)
		}
		if !found {
			t.Errorf("condition %s not true: %+v", typ, out.Status.Conditions)
		}
	}
	if out.Status.AcceptedNames.Plural != "widgets" || !slices.Contains(out.Finalizers, "customresourcecleanup.apiextensions.k8s.io") {
		t.Errorf("acceptedNames %+v, finalizers %v", out.Status.AcceptedNames, out.Finalizers)
	}
	if !slices.Equal(out.Status.StoredVersions, []string{"v1"}) {
		t.Errorf("storedVersions %v", out.Status.StoredVersions)
	}

	dc := discovery.NewDiscoveryClientForConfigOrDie(cfg)
	list, err := dc.ServerResourcesForGroupVersion("example.com/v1")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]metav1.APIResource{}
	for _, r := range list.APIResources {
		names[r.Name] = r
	}
	w, ok := names["widgets"]
	if !ok || !w.Namespaced || !slices.Equal(w.ShortNames, []string{"wd"}) || !slices.Contains(w.Categories, "all") ||
		!slices.Contains(w.Verbs, "watch") || !slices.Contains(w.Verbs, "deletecollection") {
		t.Errorf("widgets in discovery: %+v", w)
	}
	if _, ok := names["widgets/status"]; !ok {
		t.Error("widgets/status missing from discovery")
	}
	if _, ok := names["widgets/scale"]; !ok {
		t.Error("widgets/scale missing from discovery")
	}
	// Aggregated discovery (what kubectl 1.30+ reads).
	_, lists, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range lists {
		if l.GroupVersion == "example.com/v1" {
			for _, r := range l.APIResources {
				found = found || r.Name == "widgets"
			}
		}
	}
	if !found {
		t.Error("widgets missing from aggregated discovery")
	}

	// A second CRD with a taken short name: names not accepted, not served.
	other := widgetCRD()
	other.Name = "gadgets.example.com"
	other.Spec.Names = apiextensionsv1.CustomResourceDefinitionNames{Plural: "gadgets", Singular: "gadget", Kind: "Gadget", ShortNames: []string{"wd"}}
	got := createCRD(t, cfg, other)
	for _, c := range got.Status.Conditions {
		if c.Type == apiextensionsv1.NamesAccepted && c.Status != apiextensionsv1.ConditionFalse {
			t.Errorf("conflicting names accepted: %+v", c)
		}
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			t.Errorf("conflicting CRD established: %+v", c)
		}
	}
	dyn := dynamic.NewForConfigOrDie(cfg)
	_, err = dyn.Resource(schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "gadgets"}).Namespace("default").List(context.Background(), metav1.ListOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("a CRD with conflicting names is served: %v", err)
	}
}

func TestCRDValidatedOnCreate(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := apiextensionsclient.NewForConfigOrDie(cfg)
	bad := widgetCRD()
	bad.Name = "wrong.example.com" // must be <plural>.<group>
	_, err := cs.ApiextensionsV1().CustomResourceDefinitions().Create(context.Background(), bad, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.name") {
		t.Errorf("bad name: %v", err)
	}
	bad = widgetCRD()
	// Not structural: a property without a type.
	bad.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["loose"] = apiextensionsv1.JSONSchemaProps{}
	_, err = cs.ApiextensionsV1().CustomResourceDefinitions().Create(context.Background(), bad, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "openAPIV3Schema.properties[spec].properties[loose].type: Required value") {
		t.Errorf("non-structural schema: %v", err)
	}
	bad = widgetCRD()
	bad.Spec.Versions[0].Storage = false
	_, err = cs.ApiextensionsV1().CustomResourceDefinitions().Create(context.Background(), bad, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "storage") {
		t.Errorf("no storage version: %v", err)
	}
}

func TestCustomResourceLifecycle(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	createCRD(t, cfg, widgetCRD())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dyn := dynamic.NewForConfigOrDie(cfg)
	widgets := dyn.Resource(widgetsGVR).Namespace("default")

	w, err := widgets.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	// Defaults applied, unknown fields pruned, status dropped (it has a
	// subresource).
	w1 := widget("w1", map[string]any{"host": "a.example", "bogus": true})
	w1.Object["status"] = map[string]any{"phase": "Faked"}
	got, err := widgets.Create(ctx, w1, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, ok := got.Object["status"]; ok {
		t.Errorf("create set the status: %v", got.Object["status"])
	}
	spec, _, _ := unstructured.NestedMap(got.Object, "spec")
	if spec["replicas"] != int64(1) || spec["color"] != "red" {
		t.Errorf("defaults not applied: %v", spec)
	}
	if _, ok := spec["bogus"]; ok {
		t.Errorf("unknown field kept: %v", spec)
	}
	if got.GetGeneration() != 1 || got.GetUID() == "" {
		t.Errorf("metadata: generation %d uid %q", got.GetGeneration(), got.GetUID())
	}

	// Invalid objects: 422 naming the field, as Kubernetes words it.
	for _, tc := range []struct {
		spec map[string]any
		want string
	}{
		{map[string]any{"host": "a", "replicas": 11}, "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"},
		{map[string]any{"host": "a", "color": "green"}, `spec.color: Unsupported value: "green": supported values: "red", "blue"`},
		{map[string]any{"host": "A!"}, `spec.host: Invalid value: "A!": spec.host in body should match '^[a-z.]+$'`},
		{map[string]any{}, "spec.host: Required value"},
		{map[string]any{"host": "a", "replicas": "three"}, `spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"`},
	} {
		_, err := widgets.Create(ctx, widget("bad", tc.spec), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create %v: got %v, want 422 with %q", tc.spec, err, tc.want)
		}
	}
	bad := widget("Bad_Name", map[string]any{"host": "a"})
	if _, err := widgets.Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.name") {
		t.Errorf("bad name: %v", err)
	}

	// Status only through /status.
	got.Object["status"] = map[string]any{"phase": "Ready"}
	unstructured.SetNestedField(got.Object, int64(3), "spec", "replicas")
	got, err = widgets.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Object["status"]; ok || got.GetGeneration() != 2 {
		t.Errorf("main resource changed status (%v) or generation %d != 2", got.Object["status"], got.GetGeneration())
	}
	got.Object["status"] = map[string]any{"phase": "Ready", "replicas": int64(3)}
	unstructured.SetNestedField(got.Object, int64(5), "spec", "replicas")
	got, err = widgets.UpdateStatus(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ph, _, _ := unstructured.NestedString(got.Object, "status", "phase"); ph != "Ready" {
		t.Errorf("status not updated: %v", got.Object["status"])
	}
	if r, _, _ := unstructured.NestedInt64(got.Object, "spec", "replicas"); r != 3 || got.GetGeneration() != 2 {
		t.Errorf("/status changed the spec: replicas %d generation %d", r, got.GetGeneration())
	}

	// Patches: merge and JSON work; strategic merge is 415.
	got, err = widgets.Patch(ctx, "w1", types.MergePatchType, []byte(`{"spec":{"color":"blue"}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c, _, _ := unstructured.NestedString(got.Object, "spec", "color"); c != "blue" {
		t.Errorf("merge patch: color %q", c)
	}
	if _, err := widgets.Patch(ctx, "w1", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/replicas","value":4}]`), metav1.PatchOptions{}); err != nil {
		t.Errorf("json patch: %v", err)
	}
	_, err = widgets.Patch(ctx, "w1", types.StrategicMergePatchType, []byte(`{"spec":{"color":"red"}}`), metav1.PatchOptions{})
	if se, ok := err.(apierrors.APIStatus); !ok || se.Status().Code != http.StatusUnsupportedMediaType {
		t.Errorf("strategic merge patch: %v, want 415", err)
	}
	if _, err := widgets.Patch(ctx, "w1", types.MergePatchType, []byte(`{"spec":{"replicas":-1}}`), metav1.PatchOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("invalid merge patch accepted: %v", err)
	}

	// Server-side apply creates and updates.
	applied, err := widgets.Apply(ctx, "w2", widget("w2", map[string]any{"host": "b"}), metav1.ApplyOptions{FieldManager: "test"})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if r, _, _ := unstructured.NestedInt64(applied.Object, "spec", "replicas"); r != 1 || len(applied.GetManagedFields()) == 0 {
		t.Errorf("apply: replicas %d, managedFields %v", r, applied.GetManagedFields())
	}

	// Scale subresource.
	sc, err := widgets.Get(ctx, "w1", metav1.GetOptions{}, "scale")
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := unstructured.NestedInt64(sc.Object, "spec", "replicas"); r != 4 {
		t.Errorf("scale spec.replicas %d, want 4", r)
	}
	if r, _, _ := unstructured.NestedInt64(sc.Object, "status", "replicas"); r != 3 {
		t.Errorf("scale status.replicas %d, want 3", r)
	}
	if _, err := widgets.Patch(ctx, "w1", types.MergePatchType, []byte(`{"spec":{"replicas":7}}`), metav1.PatchOptions{}, "scale"); err != nil {
		t.Fatal(err)
	}
	got, _ = widgets.Get(ctx, "w1", metav1.GetOptions{})
	if r, _, _ := unstructured.NestedInt64(got.Object, "spec", "replicas"); r != 7 {
		t.Errorf("after scale: replicas %d, want 7", r)
	}

	// Field selectors on metadata.name.
	l, err := widgets.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=w2"})
	if err != nil || len(l.Items) != 1 || l.Items[0].GetName() != "w2" {
		t.Errorf("field selector: %v %v", err, l)
	}

	if err := widgets.Delete(ctx, "w1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(seen) < 8 {
		select {
		case ev := <-w.ResultChan():
			u, _ := ev.Object.(*unstructured.Unstructured)
			if u == nil {
				t.Fatalf("watch event %v: %#v", ev.Type, ev.Object)
			}
			seen = append(seen, string(ev.Type)+" "+u.GetName())
		case <-ctx.Done():
			t.Fatalf("watch saw only %v", seen)
		}
	}
	want := []string{"ADDED w1", "MODIFIED w1", "MODIFIED w1", "MODIFIED w1", "MODIFIED w1", "ADDED w2", "MODIFIED w1", "DELETED w1"}
	if !slices.Equal(seen, want) {
		t.Errorf("watch saw %v, want %v", seen, want)
	}

	// deletecollection.
	if err := widgets.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if l, err := widgets.List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) != 0 {
		t.Errorf("after deletecollection: %v %v", err, l)
	}
}

func TestCustomResourceTable(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	createCRD(t, cfg, widgetCRD())
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(cfg)
	if _, err := dyn.Resource(widgetsGVR).Namespace("default").Create(ctx, widget("w1", map[string]any{"host": "a", "replicas": 2}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, err := rest.RESTClientFor(&rest.Config{Host: cfg.Host, Transport: cfg.Transport, ContentConfig: rest.ContentConfig{
		GroupVersion: &schema.GroupVersion{Group: "example.com", Version: "v1"}, NegotiatedSerializer: clientgoscheme.Codecs.WithoutConversion()}, APIPath: "/apis"})
	if err != nil {
		t.Fatal(err)
	}
	body, err := rc.Get().Namespace("default").Resource("widgets").SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").Do(ctx).Raw()
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, c := range table.ColumnDefinitions {
		cols = append(cols, c.Name)
	}
	if !slices.Equal(cols, []string{"Name", "Replicas", "Color", "Phase"}) || len(table.Rows) != 1 {
		t.Fatalf("columns %v, rows %d", cols, len(table.Rows))
	}
	if cells := table.Rows[0].Cells; cells[0] != "w1" || cells[1] != float64(2) || cells[2] != "red" {
		t.Errorf("cells %v", cells)
	}
}

func TestDeletingCRDDeletesObjects(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	c := widgetCRD()
	c.Spec.Scope = apiextensionsv1.ClusterScoped
	createCRD(t, cfg, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	widgets := dynamic.NewForConfigOrDie(cfg).Resource(widgetsGVR)
	for _, n := range []string{"a", "b", "c"} {
		if _, err := widgets.Create(ctx, widget(n, map[string]any{"host": "h"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	crds := apiextensionsclient.NewForConfigOrDie(cfg).ApiextensionsV1().CustomResourceDefinitions()
	if err := crds.Delete(ctx, c.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		_, err := crds.Get(ctx, c.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("CRD still there: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("CRD with 3 objects gone after %v", time.Since(start))
	if _, err := widgets.List(ctx, metav1.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("widgets still served: %v", err)
	}
	// Re-created, the CRD starts empty: the objects were deleted, not hidden.
	createCRD(t, cfg, c)
	l, err := widgets.List(ctx, metav1.ListOptions{})
	if err != nil || len(l.Items) != 0 {
		t.Errorf("after re-creating the CRD: %v, %d objects", err, len(l.Items))
	}
}

func TestCustomResourceOpenAPI(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	createCRD(t, cfg, widgetCRD())
	ctx := context.Background()
	oc := discovery.NewDiscoveryClientForConfigOrDie(cfg).OpenAPIV3()
	paths, err := oc.Paths()
	if err != nil {
		t.Fatal(err)
	}
	gv, ok := paths["apis/example.com/v1"]
	if !ok {
		t.Fatalf("no OpenAPI v3 document for example.com/v1 in %d paths", len(paths))
	}
	b, err := gv.Schema("application/json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Properties map[string]struct {
						Type    string `json:"type"`
						Default any    `json:"default"`
					} `json:"properties"`
				} `json:"properties"`
				GVK []map[string]string `json:"x-kubernetes-group-version-kind"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	w, ok := doc.Components.Schemas["com.example.v1.Widget"]
	if !ok {
		t.Fatal("no com.example.v1.Widget component")
	}
	if r := w.Properties["spec"].Properties["replicas"]; r.Type != "integer" || r.Default != float64(1) {
		t.Errorf("spec.replicas schema: %+v", r)
	}
	if _, ok := w.Properties["metadata"]; !ok || len(w.GVK) != 1 || w.GVK[0]["kind"] != "Widget" {
		t.Errorf("metadata or GVK missing: %+v", w.GVK)
	}

	// A CRD update shows in the document: the schema gains a field.
	crds := apiextensionsclient.NewForConfigOrDie(cfg).ApiextensionsV1().CustomResourceDefinitions()
	c, err := crds.Get(ctx, "widgets.example.com", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["size"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
	if _, err := crds.Update(ctx, c, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	paths, _ = oc.Paths()
	b, err = paths["apis/example.com/v1"].Schema("application/json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc.Components.Schemas["com.example.v1.Widget"].Properties["spec"].Properties["size"]; !ok {
		t.Error("the updated schema is not in the document")
	}
	// And the new field is kept now, no longer pruned.
	got, err := dynamic.NewForConfigOrDie(cfg).Resource(widgetsGVR).Namespace("default").Create(ctx, widget("w", map[string]any{"host": "h", "size": "L"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s, _, _ := unstructured.NestedString(got.Object, "spec", "size"); s != "L" {
		t.Errorf("spec.size %q after the CRD update", s)
	}
}

func TestCustomResourceVersionsAndCEL(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	c := widgetCRD()
	v1 := c.Spec.Versions[0]
	v1.Storage = false
	// v1 carries a CEL rule; v2 is the storage version, served beside it.
	spec := v1.Schema.OpenAPIV3Schema.Properties["spec"]
	spec.XValidations = apiextensionsv1.ValidationRules{{Rule: "self.replicas <= 5 || self.color == 'blue'", Message: "more than 5 replicas must be blue"}}
	v1.Schema.OpenAPIV3Schema.Properties["spec"] = spec
	v2 := *v1.DeepCopy()
	v2.Name, v2.Storage = "v2", true
	v2.Schema.OpenAPIV3Schema.Properties["spec"] = apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr.To(true)}
	c.Spec.Versions = []apiextensionsv1.CustomResourceDefinitionVersion{v1, v2}
	createCRD(t, cfg, c)
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(cfg)

	if _, err := dyn.Resource(widgetsGVR).Namespace("default").Create(ctx, widget("w", map[string]any{"host": "h", "replicas": 7}), metav1.CreateOptions{}); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), "spec: Invalid value: \"object\": more than 5 replicas must be blue") {
		t.Errorf("CEL rule: %v", err)
	}
	if _, err := dyn.Resource(widgetsGVR).Namespace("default").Create(ctx, widget("w", map[string]any{"host": "h", "replicas": 7, "color": "blue"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The same object through v2 (conversion None: apiVersion rewritten).
	got, err := dyn.Resource(widgetsGVR.GroupResource().WithVersion("v2")).Namespace("default").Get(ctx, "w", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetAPIVersion() != "example.com/v2" || got.Object["spec"].(map[string]any)["replicas"] != int64(7) {
		t.Errorf("through v2: %v", got.Object)
	}
	// v2 keeps a field v1's schema does not have; read through v1, the
	// object is pruned to v1's schema, as Kubernetes' converter does.
	got.Object["spec"].(map[string]any)["extra"] = "kept"
	if got, err = dyn.Resource(widgetsGVR.GroupResource().WithVersion("v2")).Namespace("default").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got.Object["spec"].(map[string]any)["extra"] != "kept" {
		t.Errorf("v2 pruned a field its schema preserves: %v", got.Object["spec"])
	}
	got, err = dyn.Resource(widgetsGVR).Namespace("default").Get(ctx, "w", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Object["spec"].(map[string]any)["extra"]; ok || got.GetAPIVersion() != "example.com/v1" {
		t.Errorf("through v1: %v", got.Object)
	}
	// Discovery prefers v2 (Kubernetes' version priority).
	groups, err := discovery.NewDiscoveryClientForConfigOrDie(cfg).ServerGroups()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups.Groups {
		if g.Name == "example.com" && (g.PreferredVersion.Version != "v2" || len(g.Versions) != 2) {
			t.Errorf("example.com group: %+v", g)
		}
	}

	// Webhook conversion is refused: nothing here would call it.
	hook := widgetCRD()
	hook.Name, hook.Spec.Names.Plural, hook.Spec.Names.Singular, hook.Spec.Names.Kind, hook.Spec.Names.ShortNames = "hooks.example.com", "hooks", "hook", "Hook", nil
	hook.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.WebhookConverter,
		Webhook: &apiextensionsv1.WebhookConversion{ConversionReviewVersions: []string{"v1"},
			ClientConfig: &apiextensionsv1.WebhookClientConfig{URL: ptr.To("https://127.132.0.1/convert")}}}
	_, err = apiextensionsclient.NewForConfigOrDie(cfg).ApiextensionsV1().CustomResourceDefinitions().Create(ctx, hook, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `spec.conversion.strategy: Unsupported value: "Webhook"`) {
		t.Errorf("webhook conversion: %v", err)
	}
}

// TestCRDsFollowedAcrossServers: two API servers on one store (as two
// servers of a cluster share the replicated state): a CRD written through
// one is served by the other, a change shows there, a deletion stops it.
func TestCRDsFollowedAcrossServers(t *testing.T) {
	a, cfgA := newTestServer(t, 1000)
	b, err := New(Config{Listen: "127.132.0.1:0", PKIDir: t.TempDir(), Token: "test-token", Store: a.cfg.Store, Logger: a.cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go b.watchCRDs(ctx)
	defer b.bgCancel()
	cfgB := &rest.Config{Host: "http://in-process", Transport: b.InProcessTransport(), QPS: -1}

	createCRD(t, cfgA, widgetCRD())
	dynB := dynamic.NewForConfigOrDie(cfgB).Resource(widgetsGVR).Namespace("default")
	if _, err := dynB.Create(ctx, widget("w", map[string]any{"host": "h"}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("the other server does not serve the CRD: %v", err)
	}
	// A new field, added through A, is kept (not pruned) by B once its
	// watch has the change.
	crdsA := apiextensionsclient.NewForConfigOrDie(cfgA).ApiextensionsV1().CustomResourceDefinitions()
	c, err := crdsA.Get(ctx, "widgets.example.com", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["size"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
	if _, err := crdsA.Update(ctx, c, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ { // bounded by ctx
		got, err := dynB.Patch(ctx, "w", types.MergePatchType, []byte(`{"spec":{"size":"L"}}`), metav1.PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s, _, _ := unstructured.NestedString(got.Object, "spec", "size"); s == "L" {
			t.Logf("the change reached the other server after %d tries", i+1)
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the CRD update never reached the other server")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := crdsA.Delete(ctx, "widgets.example.com", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := dynB.List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the other server still serves a deleted CRD: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCustomResourceApplyMergesListMaps: server-side apply types custom
// objects with their CRD's schema, so two managers' entries of a list map
// (x-kubernetes-list-type: map) merge instead of conflicting over an
// atomic list.
func TestCustomResourceApplyMergesListMaps(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	c := widgetCRD()
	spec := c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	spec.Properties["ports"] = apiextensionsv1.JSONSchemaProps{Type: "array", XListType: ptr.To("map"), XListMapKeys: []string{"name"},
		Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", Required: []string{"name"},
			Properties: map[string]apiextensionsv1.JSONSchemaProps{"name": {Type: "string"}, "port": {Type: "integer"}}}}}
	c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
	createCRD(t, cfg, c)
	ctx := context.Background()
	widgets := dynamic.NewForConfigOrDie(cfg).Resource(widgetsGVR).Namespace("default")
	a := widget("w", map[string]any{"host": "h", "ports": []any{map[string]any{"name": "http", "port": int64(80)}}})
	if _, err := widgets.Apply(ctx, "w", a, metav1.ApplyOptions{FieldManager: "a"}); err != nil {
		t.Fatal(err)
	}
	b := widget("w", map[string]any{"ports": []any{map[string]any{"name": "https", "port": int64(443)}}})
	got, err := widgets.Apply(ctx, "w", b, metav1.ApplyOptions{FieldManager: "b"})
	if err != nil {
		t.Fatalf("second manager's apply: %v", err)
	}
	ports, _, _ := unstructured.NestedSlice(got.Object, "spec", "ports")
	if len(ports) != 2 {
		t.Errorf("ports after two managers applied: %v", ports)
	}
	// A manager taking another's field still conflicts.
	b2 := widget("w", map[string]any{"host": "other"})
	if _, err := widgets.Apply(ctx, "w", b2, metav1.ApplyOptions{FieldManager: "b"}); !apierrors.IsConflict(err) {
		t.Errorf("apply over another manager's field: %v, want 409", err)
	}
}

// BenchmarkCustomResourceCreate: creating a custom object (decode, prune,
// default, schema validation, store) beside a ConfigMap of similar size in
// the same run, through the in-process transport. Read the ratio, not the
// absolute figures (2 shared cores).
func BenchmarkCustomResourceCreate(b *testing.B) {
	_, cfg := newTestServer(b, 1000)
	cfg.ContentConfig = rest.ContentConfig{}
	ctx := context.Background()
	out, err := apiextensionsclient.NewForConfigOrDie(cfg).ApiextensionsV1().CustomResourceDefinitions().Create(ctx, widgetCRD(), metav1.CreateOptions{})
	if err != nil || out == nil {
		b.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(cfg)
	b.Run("configmap", func(b *testing.B) {
		cms := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace("default")
		for i := 0; i < b.N; i++ {
			cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"generateName": "cm-"}, "data": map[string]any{"host": "a.example", "replicas": "3", "color": "blue"}}}
			if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("widget", func(b *testing.B) {
		widgets := dyn.Resource(widgetsGVR).Namespace("default")
		for i := 0; i < b.N; i++ {
			w := widget("", map[string]any{"host": "a.example", "replicas": int64(3), "color": "blue"})
			w.SetGenerateName("w-")
			if _, err := widgets.Create(ctx, w, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCRDsLoadedAtStart: a server starting on a store that holds CRDs (a
// restart) serves them in discovery before its first request.
func TestCRDsLoadedAtStart(t *testing.T) {
	a, cfgA := newTestServer(t, 1000)
	createCRD(t, cfgA, widgetCRD())
	b, err := New(Config{Listen: "127.132.0.1:0", PKIDir: t.TempDir(), Token: "test-token", Store: a.cfg.Store, Logger: a.cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	b.loadCRDs(context.Background())
	list, err := discovery.NewDiscoveryClientForConfigOrDie(&rest.Config{Host: "http://in-process", Transport: b.InProcessTransport()}).
		ServerResourcesForGroupVersion("example.com/v1")
	if err != nil {
		t.Fatal(err)
	}
	if len(list.APIResources) == 0 || list.APIResources[0].Name != "widgets" {
		t.Errorf("discovery after a start: %+v", list.APIResources)
	}
}

// TestCRDAppliedAndPatched: a CRD applied server-side, then changed by a
// strategic merge patch (what kubectl apply sends for a built-in kind):
// the change (a new short name) is served at once.
func TestCRDAppliedAndPatched(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	ctx := context.Background()
	c := widgetCRD()
	c.TypeMeta = metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"}
	body, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(body); err != nil {
		t.Fatal(err)
	}
	delete(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	crds := dynamic.NewForConfigOrDie(cfg).Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	got, err := crds.Apply(ctx, "widgets.example.com", u, metav1.ApplyOptions{FieldManager: "test"})
	if err != nil {
		t.Fatalf("server-side apply of a CRD: %v", err)
	}
	if len(got.GetManagedFields()) == 0 {
		t.Error("no managedFields on the applied CRD")
	}
	if _, err := crds.Patch(ctx, "widgets.example.com", types.StrategicMergePatchType,
		[]byte(`{"spec":{"names":{"shortNames":["wd","wdg"]}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := discovery.NewDiscoveryClientForConfigOrDie(cfg).ServerResourcesForGroupVersion("example.com/v1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(list.APIResources[0].ShortNames, []string{"wd", "wdg"}) {
		t.Errorf("short names after the patch: %v", list.APIResources[0].ShortNames)
	}
}

// TestCRDTerminatingWaitsForFinalizers: a CRD whose object has a finalizer
// stays Terminating (its condition set, creates refused with 405) until the
// finalizer is removed, then goes.
func TestCRDTerminatingWaitsForFinalizers(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	createCRD(t, cfg, widgetCRD())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	widgets := dynamic.NewForConfigOrDie(cfg).Resource(widgetsGVR).Namespace("default")
	held := widget("held", map[string]any{"host": "h"})
	held.SetFinalizers([]string{"example.com/hold"})
	if _, err := widgets.Create(ctx, held, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crds := apiextensionsclient.NewForConfigOrDie(cfg).ApiextensionsV1().CustomResourceDefinitions()
	if err := crds.Delete(ctx, "widgets.example.com", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		c, err := crds.Get(ctx, "widgets.example.com", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		terminating := false
		for _, cond := range c.Status.Conditions {
			terminating = terminating || (cond.Type == apiextensionsv1.Terminating && cond.Status == apiextensionsv1.ConditionTrue)
		}
		if terminating {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no Terminating condition: %+v", c.Status.Conditions)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err := widgets.Create(ctx, widget("late", map[string]any{"host": "h"}), metav1.CreateOptions{})
	if !apierrors.IsMethodNotSupported(err) || !strings.Contains(err.Error(), "terminating") {
		t.Errorf("create during termination: %v", err)
	}
	got, err := widgets.Get(ctx, "held", metav1.GetOptions{})
	if err != nil || got.GetDeletionTimestamp() == nil {
		t.Fatalf("the held object: %v %v", err, got)
	}
	if _, err := widgets.Patch(ctx, "held", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := crds.Get(ctx, "widgets.example.com", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the CRD did not go after its last object: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCustomResourceFieldSelectors: metadata.name/namespace and the CRD's
// selectableFields select; any other field is 400 as in Kubernetes.
func TestCustomResourceFieldSelectors(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	c := widgetCRD()
	c.Spec.Versions[0].SelectableFields = []apiextensionsv1.SelectableField{{JSONPath: ".spec.color"}}
	createCRD(t, cfg, c)
	ctx := context.Background()
	widgets := dynamic.NewForConfigOrDie(cfg).Resource(widgetsGVR).Namespace("default")
	for _, w := range []*unstructured.Unstructured{
		widget("r", map[string]any{"host": "h"}), widget("b", map[string]any{"host": "h", "color": "blue"}),
	} {
		if _, err := widgets.Create(ctx, w, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for sel, want := range map[string]string{"spec.color=blue": "b", "spec.color!=blue": "r", "metadata.name=r": "r", "metadata.namespace=default,spec.color=red": "r"} {
		l, err := widgets.List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil || len(l.Items) != 1 || l.Items[0].GetName() != want {
			t.Errorf("field selector %s: %v %v", sel, err, l)
		}
	}
	_, err := widgets.List(ctx, metav1.ListOptions{FieldSelector: "spec.host=h"})
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "field label not supported: spec.host") {
		t.Errorf("unsupported field label: %v", err)
	}
	w, err := widgets.Watch(ctx, metav1.ListOptions{FieldSelector: "spec.color=blue"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	select {
	case ev := <-w.ResultChan():
		if u, ok := ev.Object.(*unstructured.Unstructured); !ok || u.GetName() != "b" {
			t.Errorf("watch with a field selector: %v %v", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Error("no event from the filtered watch")
	}
}

// TestCustomResourceStrictPatch: fieldValidation=Strict refuses unknown
// fields a patch brings; without it they are pruned.
func TestCustomResourceStrictPatch(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	createCRD(t, cfg, widgetCRD())
	ctx := context.Background()
	widgets := dynamic.NewForConfigOrDie(cfg).Resource(widgetsGVR).Namespace("default")
	if _, err := widgets.Create(ctx, widget("w", map[string]any{"host": "h"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := widgets.Patch(ctx, "w", types.MergePatchType, []byte(`{"spec":{"bogus":1}}`), metav1.PatchOptions{FieldValidation: "Strict"})
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `unknown field "spec.bogus"`) {
		t.Errorf("strict patch: %v", err)
	}
	var warned []string
	warnCfg := rest.CopyConfig(cfg)
	warnCfg.WarningHandler = warningRecorder{into: &warned}
	got, err := dynamic.NewForConfigOrDie(warnCfg).Resource(widgetsGVR).Namespace("default").
		Patch(ctx, "w", types.MergePatchType, []byte(`{"spec":{"bogus":1,"color":"blue"}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(warned, `unknown field "spec.bogus"`) {
		t.Errorf("warnings of a lenient patch: %q", warned)
	}
	if spec := got.Object["spec"].(map[string]any); spec["bogus"] != nil || spec["color"] != "blue" {
		t.Errorf("lenient patch: %v", spec)
	}
	// Server-side apply types the configuration by the schema, so an
	// unknown field is refused as in Kubernetes (400 here, never 500).
	_, err = widgets.Apply(ctx, "w", widget("w", map[string]any{"other": 1}), metav1.ApplyOptions{FieldManager: "x", Force: true})
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), ".spec.other: field not declared in schema") {
		t.Errorf("apply of an unknown field: %v", err)
	}
}

// TestCustomResourceOpenAPIV2: the custom kind's schema reaches
// /openapi/v2 too (converted from the v3 document), which kubectl 1.27 and
// 1.28 read for apply and explain.
func TestCustomResourceOpenAPIV2(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	createCRD(t, cfg, widgetCRD())
	body, err := discovery.NewDiscoveryClientForConfigOrDie(cfg).RESTClient().Get().AbsPath("/openapi/v2").
		SetHeader("Accept", "application/json").Do(context.Background()).Raw()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Definitions map[string]struct {
			Properties map[string]struct {
				Properties map[string]struct {
					Type string `json:"type"`
				} `json:"properties"`
			} `json:"properties"`
			GVK []map[string]string `json:"x-kubernetes-group-version-kind"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	w, ok := doc.Definitions["com.example.v1.Widget"]
	if !ok || w.Properties["spec"].Properties["replicas"].Type != "integer" || len(w.GVK) != 1 {
		t.Errorf("com.example.v1.Widget in /openapi/v2: %v %+v", ok, w)
	}
}

// TestCustomResourceBadBodies: malformed custom objects get 400 or 422,
// never a 500 or a panic.
func TestCustomResourceBadBodies(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	createCRD(t, cfg, widgetCRD())
	rc := discovery.NewDiscoveryClientForConfigOrDie(cfg).RESTClient()
	for _, body := range []string{
		`[]`, `"x"`, `{}`, `{"apiVersion":"example.com/v1"}`,
		`{"apiVersion":"example.com/v2","kind":"Widget","metadata":{"name":"a"}}`,
		`{"apiVersion":"example.com/v1","kind":"Gadget","metadata":{"name":"a"}}`,
		`{"apiVersion":"example.com/v1","kind":"Widget","metadata":"a"}`,
		`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"a","labels":"x"},"spec":{"host":"h"}}`,
		`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"a"},"spec":"h"}`,
		`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"a"},"spec":{"host":"h","replicas":1.5}}`,
		`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"a"},"spec":{"host":null}}`,
		`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"a","namespace":"other"},"spec":{"host":"h"}}`,
	} {
		res := rc.Post().AbsPath("/apis/example.com/v1/namespaces/default/widgets").SetHeader("Content-Type", "application/json").
			Body([]byte(body)).Do(context.Background())
		var code int
		res.StatusCode(&code)
		if code != http.StatusBadRequest && code != http.StatusUnprocessableEntity {
			t.Errorf("POST %s: %d %v", body, code, res.Error())
		}
	}
}

// TestCRDBadBodies: malformed CRDs get 400 or 422, never a 500 or a panic.
func TestCRDBadBodies(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	rc := discovery.NewDiscoveryClientForConfigOrDie(cfg).RESTClient()
	head := `{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"xs.example.com"},`
	names := `"names":{"plural":"xs","kind":"X"}`
	for _, spec := range []string{
		`"spec":{}`,
		`"spec":{"group":"example.com","scope":"Namespaced",` + names + `,"versions":[]}`,
		`"spec":{"group":"example.com","scope":"Sideways",` + names + `,"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object"}}}]}`,
		`"spec":{"group":"example.com","scope":"Namespaced",` + names + `,"versions":[{"name":"v1","served":true,"storage":true}]}`,
		`"spec":{"group":"example.com","scope":"Namespaced",` + names + `,"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","properties":{"a":{"type":"string","default":5}}}}}]}`,
		`"spec":{"group":"example.com","scope":"Namespaced",` + names + `,"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-validations":[{"rule":"self.nope +"}]}}}]}`,
		`"spec":{"group":"example.com","scope":"Namespaced",` + names + `,"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object"}},"additionalPrinterColumns":[{"name":"A","type":"string","jsonPath":"{{"}]}]}`,
		`"spec":{"group":"example.com","scope":"Namespaced",` + names + `,"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","properties":{"a":{"$ref":"#/x"}}}}}]}`,
		`"spec":"nope"`,
	} {
		res := rc.Post().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").SetHeader("Content-Type", "application/json").
			Body([]byte(head + spec + `}`)).Do(context.Background())
		var code int
		res.StatusCode(&code)
		if code != http.StatusBadRequest && code != http.StatusUnprocessableEntity {
			t.Errorf("POST CRD with %s: %d %v", spec, code, res.Error())
		}
	}
}
