package customresource

import (
	"encoding/json"
	"reflect"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type Widget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              WidgetSpec   `json:"spec"`
	Status            WidgetStatus `json:"status,omitempty"`
}

type WidgetSpec struct {
	Size     string             `json:"size" crd:"enum=small|large"`
	Replicas *int32             `json:"replicas,omitempty" crd:"minimum=0,maximum=10,default=1"`
	Labels   map[string]string  `json:"labels,omitempty"`
	Ports    []Port             `json:"ports,omitempty" crd:"maxItems=4"`
	Memory   resource.Quantity  `json:"memory,omitempty"`
	Target   intstr.IntOrString `json:"target,omitempty"`
	Raw      json.RawMessage    `json:"raw,omitempty"`
	Name     string             `json:"name,omitempty" crd:"pattern=^[a-z]{1,3}(,[a-z]+)?$"`
	Common   `json:",inline"`
	skipped  int
}

type Common struct {
	Note string `json:"note"`
}

type Port struct {
	Port int32  `json:"port"`
	Name string `json:"name,omitempty"`
}

type WidgetStatus struct {
	Phase      string      `json:"phase,omitempty"`
	ObservedAt metav1.Time `json:"observedAt,omitempty"`
}

func TestSchemaOfWidget(t *testing.T) {
	s, err := Schema(reflect.TypeOf(Widget{}))
	if err != nil {
		t.Fatal(err)
	}
	spec := s.Properties["spec"]
	if got := spec.Required; !reflect.DeepEqual(got, []string{"size", "note"}) {
		t.Errorf("spec required = %v, want [size note] (replicas has a default, the rest omitempty)", got)
	}
	if e := spec.Properties["size"].Enum; len(e) != 2 || string(e[1].Raw) != `"large"` {
		t.Errorf("size enum = %v", e)
	}
	r := spec.Properties["replicas"]
	if r.Type != "integer" || r.Format != "int32" || *r.Minimum != 0 || *r.Maximum != 10 || string(r.Default.Raw) != "1" {
		t.Errorf("replicas = %+v", r)
	}
	if p := spec.Properties["ports"]; p.Type != "array" || *p.MaxItems != 4 || p.Items.Schema.Properties["port"].Type != "integer" {
		t.Errorf("ports = %+v", p)
	}
	if m := spec.Properties["memory"]; !m.XIntOrString {
		t.Errorf("memory = %+v, want int-or-string", m)
	}
	if raw := spec.Properties["raw"]; raw.XPreserveUnknownFields == nil || !*raw.XPreserveUnknownFields {
		t.Errorf("raw = %+v, want preserve-unknown-fields", raw)
	}
	if p := spec.Properties["name"].Pattern; p != "^[a-z]{1,3}(,[a-z]+)?$" {
		t.Errorf("pattern = %q (commas inside a pattern must survive)", p)
	}
	if _, ok := spec.Properties["skipped"]; ok {
		t.Error("unexported field in schema")
	}
	if f := s.Properties["status"].Properties["observedAt"]; f.Format != "date-time" {
		t.Errorf("observedAt = %+v", f)
	}
	for _, k := range []string{"apiVersion", "kind", "metadata"} {
		if _, ok := s.Properties[k]; !ok {
			t.Errorf("top level lacks %s", k)
		}
	}
	// Kubernetes accepts it as structural.
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(s, &internal, nil); err != nil {
		t.Fatal(err)
	}
	st, err := structuralschema.NewStructural(&internal)
	if err != nil {
		t.Fatal(err)
	}
	if errs := structuralschema.ValidateStructural(nil, st); len(errs) > 0 {
		t.Errorf("not structural: %v", errs.ToAggregate())
	}
}

type Tree struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Children          []Tree `json:"children,omitempty"`
}

func TestSchemaRefusesWhatHasNoSchema(t *testing.T) {
	if _, err := Schema(reflect.TypeOf(Tree{})); err == nil {
		t.Error("recursive type accepted")
	}
	if _, err := Schema(reflect.TypeOf(struct {
		M map[int]string `json:"m"`
	}{})); err == nil {
		t.Error("map with int keys accepted")
	}
	if _, err := Schema(reflect.TypeOf(struct {
		C chan int `json:"c"`
	}{})); err == nil {
		t.Error("channel accepted")
	}
	if _, err := Schema(reflect.TypeOf(struct {
		S string `json:"s" crd:"bogus=1"`
	}{})); err == nil {
		t.Error("unknown crd rule accepted")
	}
}

func TestDefine(t *testing.T) {
	k, err := Define[Widget]("example.skiff.dev", "v1alpha1", Options{ShortNames: []string{"wd"}})
	if err != nil {
		t.Fatal(err)
	}
	if k.CRD.Name != "widgets.example.skiff.dev" || k.GVR.Resource != "widgets" || !k.HasStatus || !k.Namespaced {
		t.Errorf("kind = %+v", k)
	}
	if v := k.CRD.Spec.Versions[0]; v.Subresources == nil || v.Subresources.Status == nil {
		t.Error("no status subresource")
	}
	if req := k.CRD.Spec.Versions[0].Schema.OpenAPIV3Schema.Required; !reflect.DeepEqual(req, []string{"spec"}) {
		t.Errorf("top required = %v, want [spec]", req)
	}
	for in, want := range map[string]string{"policy": "policies", "day": "days", "box": "boxes", "greeting": "greetings"} {
		if got := pluralOf(in); got != want {
			t.Errorf("plural(%s) = %s, want %s", in, got, want)
		}
	}
	if _, err := Define[Port]("example.skiff.dev", "v1", Options{}); err == nil {
		t.Error("type without ObjectMeta accepted")
	}
	if _, err := Define[Widget]("nodot", "v1", Options{}); err == nil {
		t.Error("group without a dot accepted")
	}
}
