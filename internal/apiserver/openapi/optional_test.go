package openapi

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	protovalidation "k8s.io/kube-openapi/pkg/util/proto/validation"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/yaml"
)

// TestRequiredFollowsCommentTags checks "required" where the comment tag and
// omitempty disagree, against what the apiserver publishes, and that kubectl
// validating on the client accepts an aggregated ClusterRole (no rules).
func TestRequiredFollowsCommentTags(t *testing.T) {
	srv, _ := newV2Server(t)
	body := v2JSON(t, srv)
	var sw spec.Swagger
	if err := json.Unmarshal(body, &sw); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		def, field string
		required   bool
	}{
		{"io.k8s.api.rbac.v1.ClusterRole", "rules", false},          // +optional, no omitempty
		{"io.k8s.api.core.v1.Event", "reportingComponent", false},   // +optional, no omitempty
		{"io.k8s.api.core.v1.GRPCAction", "service", false},         // +optional, no omitempty
		{"io.k8s.api.core.v1.Container", "name", true},              // neither tag, no omitempty
		{"io.k8s.api.apps.v1.DeploymentSpec", "selector", true},     // neither tag, no omitempty
		{"io.k8s.api.apps.v1.DeploymentSpec", "replicas", false},    // omitempty
		{"io.k8s.api.core.v1.ContainerPort", "containerPort", true}, // neither tag, no omitempty
	} {
		d, ok := sw.Definitions[c.def]
		if !ok {
			t.Errorf("no definition %s", c.def)
			continue
		}
		if got := slices.Contains(d.Required, c.field); got != c.required {
			t.Errorf("%s.%s required = %v, want %v (required: %v)", c.def, c.field, got, c.required, d.Required)
		}
	}
	_, models := kubectlModels(t, body)
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(`
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: monitoring}
aggregationRule:
  clusterRoleSelectors: [{matchLabels: {rbac.example.com/aggregate-to-monitoring: "true"}}]
`), &obj); err != nil {
		t.Fatal(err)
	}
	if errs := protovalidation.ValidateModel(obj, models.LookupModel("io.k8s.api.rbac.v1.ClusterRole"), "ClusterRole"); len(errs) > 0 {
		t.Errorf("an aggregated ClusterRole: %v", errs)
	}
}

// TestOptionalTableIsCurrent regenerates the table of comment-tag
// exceptions from the k8s.io/api sources in the module graph and compares:
// after a k8s.io/api upgrade, run go generate in this package.
func TestOptionalTableIsCurrent(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command: ", err)
	}
	out := filepath.Join(t.TempDir(), "optional.go")
	cmd := exec.Command("go", "run", "./internal/genoptional", "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("genoptional: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("zz_generated.optional.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("zz_generated.optional.go is stale: run go generate in internal/apiserver/openapi")
	}
}
