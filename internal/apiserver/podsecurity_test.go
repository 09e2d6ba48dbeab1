package apiserver

import (
	"context"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// collectWarnings is a client-go warning handler that keeps what it got.
type collectWarnings struct {
	mu   sync.Mutex
	msgs []string
}

func (c *collectWarnings) HandleWarningHeader(code int, agent, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, text)
}

func (c *collectWarnings) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.msgs
	c.msgs = nil
	return out
}

func privilegedPod(name string) *corev1.Pod {
	yes := true
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name: "app", Image: "app", SecurityContext: &corev1.SecurityContext{Privileged: &yes}}}}}
}

// TestPodSecurity: a namespace's pod-security.kubernetes.io labels
// decide, with Kubernetes' checks and words: enforce refuses a privileged
// pod, warn lets it in with a Warning, workload templates are warned on
// (never refused), bad labels are refused, and a namespace without labels
// (kube-system too: nothing is exempt by default) admits anything.
func TestPodSecurity(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	warnings := &collectWarnings{}
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = warnings
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	mkns := func(name string, labels map[string]string) error {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
		return err
	}
	if err := mkns("locked", map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}); err != nil {
		t.Fatal(err)
	}
	if err := mkns("watched", map[string]string{"pod-security.kubernetes.io/warn": "baseline", "pod-security.kubernetes.io/warn-version": "v1.32"}); err != nil {
		t.Fatal(err)
	}

	_, err := cs.CoreV1().Pods("locked").Create(ctx, privilegedPod("root"), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(),
		`pods "root" is forbidden: violates PodSecurity "restricted:latest": privileged (container "app" must not set securityContext.privileged=true)`) {
		t.Fatalf("privileged pod in a restricted namespace: %v", err)
	}

	if _, err := cs.CoreV1().Pods("watched").Create(ctx, privilegedPod("root"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("warn level refused: %v", err)
	}
	if w := warnings.take(); len(w) != 1 || !strings.Contains(w[0], `would violate PodSecurity "baseline:v1.32": privileged (container "app" must not set securityContext.privileged=true)`) {
		t.Fatalf("warnings for a privileged pod at warn=baseline: %q", w)
	}

	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: privilegedPod("").Spec}}}
	if _, err := cs.AppsV1().Deployments("locked").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("a workload is warned on, never refused: %v", err)
	}
	// Unset warn and audit levels follow enforce, as in Kubernetes.
	if w := warnings.take(); len(w) != 1 || !strings.Contains(w[0], `would violate PodSecurity "restricted:latest": privileged`) {
		t.Fatalf("warnings for a Deployment's template at enforce=restricted: %q", w)
	}
	if _, err := cs.AppsV1().Deployments("watched").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if w := warnings.take(); len(w) != 1 || !strings.Contains(w[0], `would violate PodSecurity "baseline:v1.32"`) {
		t.Fatalf("warnings for a Deployment's template at warn=baseline: %q", w)
	}

	err = mkns("typo", map[string]string{"pod-security.kubernetes.io/enforce": "strict"})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "pod-security.kubernetes.io/enforce") {
		t.Fatalf("namespace with a bad level: %v", err)
	}

	if _, err := cs.CoreV1().Pods("kube-system").Create(ctx, privilegedPod("root"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("kube-system (no labels) refused a privileged pod: %v", err)
	}

	// Raising a namespace's enforce level warns about the pods it would
	// now refuse.
	ns, err := cs.CoreV1().Namespaces().Get(ctx, "watched", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	warnings.take()
	ns.Labels["pod-security.kubernetes.io/enforce"] = "baseline"
	if _, err := cs.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if w := warnings.take(); len(w) == 0 || !strings.Contains(strings.Join(w, "\n"), `existing pods in namespace "watched" violate the new PodSecurity enforce level "baseline:latest"`) {
		t.Fatalf("warnings on raising enforce: %q", w)
	}
}
