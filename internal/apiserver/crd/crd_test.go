package crd

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// thingsCRD exercises the OpenAPI v3 subset Kubernetes accepts beyond the
// basics: int-or-string, nullable, formats, preserve-unknown-fields,
// embedded resources and list types (set, map with keys).
const thingsCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {plural: things, singular: thing, kind: Thing, listKind: ThingList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              port: {x-kubernetes-int-or-string: true}
              note: {type: string, nullable: true}
              email: {type: string, format: email}
              free: {type: object, x-kubernetes-preserve-unknown-fields: true}
              template:
                type: object
                x-kubernetes-embedded-resource: true
                x-kubernetes-preserve-unknown-fields: true
              tags:
                type: array
                x-kubernetes-list-type: set
                items: {type: string}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    number: {type: integer, default: 80}
`

func compileYAML(t testing.TB, y string) (*apiextensionsv1.CustomResourceDefinition, *Version) {
	t.Helper()
	c := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict([]byte(y), c); err != nil {
		t.Fatal(err)
	}
	Default(c)
	if errs := Validate(context.Background(), c, nil); len(errs) > 0 {
		t.Fatalf("CRD invalid: %v", errs)
	}
	PrepareCreate(c)
	AcceptNames(c, nil)
	compiled, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(compiled.Rows) != 1 || compiled.Rows[0].Namespaced || compiled.Rows[0].ListKind != "ThingList" {
		t.Fatalf("rows: %+v", compiled.Rows)
	}
	return c, compiled.Versions["v1"]
}

func thing(t *testing.T, spec string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON([]byte(`{"apiVersion":"example.com/v1","kind":"Thing","metadata":{"name":"x"},"spec":` + spec + `}`)); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSchemaFeatures(t *testing.T) {
	_, v := compileYAML(t, thingsCRD)
	for _, tc := range []struct {
		name, spec string
		want       string // "" = valid
	}{
		{"int-or-string int", `{"port": 8080}`, ""},
		{"int-or-string string", `{"port": "http"}`, ""},
		{"int-or-string bool", `{"port": true}`, `spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"`},
		{"nullable", `{"note": null}`, ""},
		{"format", `{"email": "not an email"}`, `spec.email: Invalid value: "not an email": spec.email in body must be of type email: "not an email"`},
		{"preserve", `{"free": {"anything": {"goes": 1}}}`, ""},
		{"embedded ok", `{"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}}`, ""},
		{"embedded no kind", `{"template": {"apiVersion": "v1", "metadata": {"name": "p"}}}`, "spec.template.kind: Required value"},
		{"embedded bad name", `{"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a/b"}}}`, "spec.template.metadata.name: Invalid value: \"a/b\""},
		{"set", `{"tags": ["a", "b"]}`, ""},
		{"set duplicate", `{"tags": ["a", "a"]}`, `spec.tags[1]: Duplicate value: "a"`},
		{"map", `{"ports": [{"name": "a"}, {"name": "b"}]}`, ""},
		{"map duplicate key", `{"ports": [{"name": "a"}, {"name": "a", "number": 1}]}`, `spec.ports[1]: Duplicate value: map[string]interface {}{"name":"a"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := thing(t, tc.spec)
			if _, err := v.Prepare(u); err != nil {
				t.Fatal(err)
			}
			errs := v.Validate(context.Background(), u, nil)
			switch {
			case tc.want == "" && len(errs) > 0:
				t.Errorf("refused: %v", errs)
			case tc.want != "" && (len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), tc.want)):
				t.Errorf("got %v, want %q", errs, tc.want)
			}
		})
	}
}

func TestPrepareDefaultsPrunesAndReports(t *testing.T) {
	_, v := compileYAML(t, thingsCRD)
	u := thing(t, `{"ports": [{"name": "a"}], "unknown": 1, "free": {"kept": 1}, "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogus": 1}}}`)
	u.Object["metadata"].(map[string]any)["bogusMeta"] = true
	unknown, err := v.Prepare(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(u.Object["spec"])
	if got := string(b); got != `{"free":{"kept":1},"ports":[{"name":"a","number":80}],"template":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}}` {
		t.Errorf("spec after prepare: %s", got)
	}
	if _, ok := u.Object["metadata"].(map[string]any)["bogusMeta"]; ok {
		t.Error("unknown metadata field kept")
	}
	joined := strings.Join(unknown, ",")
	for _, want := range []string{"spec.unknown", "metadata.bogusMeta", "spec.template.metadata.bogus"} {
		if !strings.Contains(joined, want) {
			t.Errorf("unknown fields %v lack %s", unknown, want)
		}
	}
}

func TestAcceptNames(t *testing.T) {
	a, _ := compileYAML(t, thingsCRD)
	b, _ := compileYAML(t, strings.NewReplacer("things.example.com", "stuffs.example.com", "plural: things", "plural: stuffs",
		"singular: thing", "singular: stuff").Replace(thingsCRD))
	// b's kind Thing is taken by a.
	AcceptNames(b, []*apiextensionsv1.CustomResourceDefinition{a})
	var accepted, established *apiextensionsv1.CustomResourceDefinitionCondition
	for i := range b.Status.Conditions {
		switch b.Status.Conditions[i].Type {
		case apiextensionsv1.NamesAccepted:
			accepted = &b.Status.Conditions[i]
		case apiextensionsv1.Established:
			established = &b.Status.Conditions[i]
		}
	}
	if accepted == nil || accepted.Status != apiextensionsv1.ConditionFalse || accepted.Message != `"Thing" is already in use` {
		t.Errorf("NamesAccepted: %+v", accepted)
	}
	// b was accepted alone (compileYAML), so it stays established with
	// its old names; the conflicting change is not served.
	if established == nil || established.Status != apiextensionsv1.ConditionTrue || b.Status.AcceptedNames.Plural != "stuffs" {
		t.Errorf("Established %+v, accepted names %+v", established, b.Status.AcceptedNames)
	}
	fresh := b.DeepCopy()
	fresh.Status = apiextensionsv1.CustomResourceDefinitionStatus{}
	AcceptNames(fresh, []*apiextensionsv1.CustomResourceDefinition{a})
	if Established(fresh) {
		t.Error("a new CRD with conflicting names is established")
	}
	if c, err := Compile(fresh); err != nil || len(c.Rows) != 0 {
		t.Errorf("a CRD without accepted names serves %v (%v)", c, err)
	}
}

func TestTableColumns(t *testing.T) {
	c, _ := compileYAML(t, thingsCRD)
	compiled, _ := Compile(c)
	v := compiled.Versions["v1"]
	u := thing(t, `{}`)
	u.SetCreationTimestamp(metav1.Now())
	tab, err := v.Table(context.Background(), &unstructured.UnstructuredList{Items: []unstructured.Unstructured{*u}})
	if err != nil {
		t.Fatal(err)
	}
	// No printer columns: Name and Age, as Kubernetes prints any CRD.
	if len(tab.ColumnDefinitions) != 2 || tab.ColumnDefinitions[1].Name != "Age" || tab.Rows[0].Cells[0] != "x" {
		t.Errorf("table: %+v", tab)
	}
}

// BenchmarkPrepareAndValidate is the CPU the schema adds to a write:
// coerce, prune, default and validate one object of thingsCRD.
func BenchmarkPrepareAndValidate(b *testing.B) {
	_, v := compileYAML(b, thingsCRD)
	raw := []byte(`{"apiVersion":"example.com/v1","kind":"Thing","metadata":{"name":"x","labels":{"a":"b"}},"spec":{"port":80,"email":"a@b.c","tags":["a","b"],"ports":[{"name":"a"},{"name":"b","number":1}],"template":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}},"unknown":1}}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			b.Fatal(err)
		}
		if _, err := v.Prepare(u); err != nil {
			b.Fatal(err)
		}
		if errs := v.Validate(context.Background(), u, nil); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

// TestValidationRatchets: on update, a value that did not change is not
// refused for a rule it already broke (Kubernetes 1.32's ratcheting, e.g.
// after the CRD's schema was tightened); a changed value is checked.
func TestValidationRatchets(t *testing.T) {
	_, v := compileYAML(t, thingsCRD)
	old := thing(t, `{"email": "not an email", "port": 80}`)
	next := thing(t, `{"email": "not an email", "port": 81}`)
	if errs := v.Validate(context.Background(), next, old); len(errs) > 0 {
		t.Errorf("unchanged invalid value refused: %v", errs)
	}
	if errs := v.Validate(context.Background(), next, nil); len(errs) == 0 {
		t.Error("invalid value accepted on create")
	}
	changed := thing(t, `{"email": "still not one", "port": 81}`)
	if errs := v.Validate(context.Background(), changed, old); len(errs) == 0 {
		t.Error("a changed invalid value accepted")
	}
}
