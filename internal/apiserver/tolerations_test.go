package apiserver

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestDefaultTolerationSeconds: a created pod gets the not-ready and
// unreachable NoExecute tolerations with the configured seconds, as
// Kubernetes' DefaultTolerationSeconds plugin gives them; a pod that
// tolerates a taint already (by key, by an empty key, or for an empty
// effect) keeps its own for it.
func TestDefaultTolerationSeconds(t *testing.T) {
	s, cfg := newTestServer(t, 1000)
	s.cfg.DefaultTolerationSeconds = &DefaultTolerationSeconds{NotReady: 3, Unreachable: 2}
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exists := corev1.TolerationOpExists
	for i, tc := range []struct {
		own  []corev1.Toleration
		want map[string]string // key → tolerationSeconds of the pod's NoExecute tolerations
	}{
		{nil, map[string]string{corev1.TaintNodeNotReady: "3", corev1.TaintNodeUnreachable: "2"}},
		{[]corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: exists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](60)}},
			map[string]string{corev1.TaintNodeNotReady: "3", corev1.TaintNodeUnreachable: "60"}},
		{[]corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: exists}},
			map[string]string{corev1.TaintNodeUnreachable: "2"}},
		{[]corev1.Toleration{{Operator: exists}}, map[string]string{}},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i)},
			Spec: corev1.PodSpec{Tolerations: tc.own, Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
		got, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]string{}
		for _, tol := range got.Spec.Tolerations {
			if tol.Effect == corev1.TaintEffectNoExecute {
				have[tol.Key] = "forever"
				if tol.TolerationSeconds != nil {
					have[tol.Key] = fmt.Sprint(*tol.TolerationSeconds)
				}
			}
		}
		if fmt.Sprint(have) != fmt.Sprint(tc.want) {
			t.Errorf("case %d: NoExecute tolerations %v, want %v (all: %+v)", i, have, tc.want, got.Spec.Tolerations)
		}
		if len(got.Spec.Tolerations) != len(tc.own)+len(tc.want)-countOwnNoExecute(tc.own) {
			t.Errorf("case %d: tolerations %+v", i, got.Spec.Tolerations)
		}
	}
}

func countOwnNoExecute(ts []corev1.Toleration) int {
	n := 0
	for _, t := range ts {
		if t.Effect == corev1.TaintEffectNoExecute {
			n++
		}
	}
	return n
}
