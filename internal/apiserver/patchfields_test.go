package apiserver

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestPatchFieldValidation checks fieldValidation on every patch type, as
// kubectl apply --validate=strict relies on when it patches an object that
// exists: an unknown field the patch brings in fails with Strict, naming the
// field; it warns by default and with Warn; Ignore drops it silently. In
// every accepted case the unknown field is not stored.
func TestPatchFieldValidation(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(cfg)
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "pfv"},
		Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	patches := map[types.PatchType]string{
		types.JSONPatchType:           `[{"op":"add","path":"/dataa","value":{"typo":"x"}},{"op":"replace","path":"/data/k","value":"w"}]`,
		types.MergePatchType:          `{"dataa":{"typo":"x"},"data":{"k":"w"}}`,
		types.StrategicMergePatchType: `{"dataa":{"typo":"x"},"data":{"k":"w"}}`,
	}
	for pt, body := range patches {
		for _, tc := range []struct {
			mode     string
			ok, warn bool
		}{{"Strict", false, false}, {"Warn", true, true}, {"Ignore", true, false}, {"", true, true}} {
			var warnings []string
			c := rest.CopyConfig(cfg)
			c.WarningHandler = warningRecorder{&warnings}
			req := kubernetes.NewForConfigOrDie(c).CoreV1().RESTClient().Patch(pt).Namespace("default").Resource("configmaps").Name("pfv").Body([]byte(body))
			if tc.mode != "" {
				req = req.Param("fieldValidation", tc.mode)
			}
			var got corev1.ConfigMap
			err := req.Do(ctx).Into(&got)
			switch {
			case tc.ok && err != nil, !tc.ok && !apierrors.IsBadRequest(err):
				t.Fatalf("%s fieldValidation=%q: %v", pt, tc.mode, err)
			case !tc.ok && !strings.Contains(err.Error(), `unknown field "dataa"`):
				t.Fatalf("%s fieldValidation=Strict: message %q does not name the field", pt, err)
			case tc.warn != (len(warnings) > 0), tc.warn && !strings.Contains(warnings[0], `unknown field "dataa"`):
				t.Fatalf("%s fieldValidation=%q: warnings %q", pt, tc.mode, warnings)
			case tc.ok && got.Data["k"] != "w":
				t.Fatalf("%s fieldValidation=%q: the patch was not applied: %v", pt, tc.mode, got.Data)
			}
			// Put the value back, so that the next patch changes something.
			if _, err := cs.CoreV1().ConfigMaps("default").Patch(ctx, "pfv", types.MergePatchType, []byte(`{"data":{"k":"v"}}`), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
}
