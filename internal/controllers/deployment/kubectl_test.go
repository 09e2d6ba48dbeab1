package deployment_test

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/internal/controllers/controllertest"
)

const kubectlPath = "/usr/bin/kubectl"

const manifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: kweb
  annotations:
    kubernetes.io/change-cause: first
spec:
  replicas: 2
  selector:
    matchLabels: {app: kweb}
  template:
    metadata:
      labels: {app: kweb}
    spec:
      nodeSelector: {skiff.test/fake-node: "true"}
      containers:
      - name: app
        image: example.invalid/kweb:1
`

// The real kubectl (v1.32) drives a Deployment through apply, scale,
// rollout status, set image, rollout restart, rollout history and get, as
// its users do, with this test standing in for the kubelet.
func TestKubectl(t *testing.T) {
	if _, err := exec.LookPath(kubectlPath); err != nil {
		t.Skipf("kubectl not installed at %s", kubectlPath)
	}
	c := controllertest.Start(t)
	c.AddNode(t, "fake-1", nil, nil)
	c.StartKubelet(t, "fake-1")
	kubeconfig := c.Engine.KubeconfigPath()
	run := func(stdin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*controllertest.Timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, kubectlPath, append([]string{"--kubeconfig", kubeconfig, "-n", "default"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
		}
		return out.String()
	}
	rolloutStatus := func() {
		t.Helper()
		out := run("", "rollout", "status", "deployment/kweb", "--timeout=60s")
		if !strings.Contains(out, `deployment "kweb" successfully rolled out`) {
			t.Fatalf("rollout status: %s", out)
		}
	}

	if out := run(manifest, "apply", "-f", "-"); !strings.Contains(out, "deployment.apps/kweb created") {
		t.Fatalf("apply: %s", out)
	}
	rolloutStatus()
	if out := run("", "scale", "deployment/kweb", "--replicas=3"); !strings.Contains(out, "deployment.apps/kweb scaled") {
		t.Fatalf("scale: %s", out)
	}
	rolloutStatus()
	out := run("", "get", "deploy/kweb", "-o", "jsonpath={.status.readyReplicas}/{.spec.replicas} {.status.updatedReplicas} {.status.availableReplicas}")
	if out != "3/3 3 3" {
		t.Fatalf("deployment status: %q", out)
	}

	run("", "set", "image", "deployment/kweb", "app=example.invalid/kweb:2")
	rolloutStatus()
	run("", "rollout", "restart", "deployment/kweb")
	rolloutStatus()

	out = run("", "get", "deploy,rs,pods")
	for _, want := range []string{"deployment.apps/kweb   3/3     3            3", "replicaset.apps/kweb-", "pod/kweb-"} {
		if !strings.Contains(out, want) {
			t.Fatalf("kubectl get deploy,rs,pods has no %q:\n%s", want, out)
		}
	}
	// Three revisions, only the last with pods.
	rsOut := run("", "get", "rs", "-l", "app=kweb", "--no-headers", "-o", "custom-columns=REV:.metadata.annotations.deployment\\.kubernetes\\.io/revision,DESIRED:.spec.replicas")
	if got := strings.Join(strings.Fields(rsOut), " "); !containsAll(got, "1 0", "2 0", "3 3") {
		t.Fatalf("replica sets (revision, desired): %q", got)
	}
	history := run("", "rollout", "history", "deployment/kweb")
	for _, want := range []string{"REVISION", "1 ", "2 ", "3 ", "first"} {
		if !strings.Contains(history, want) {
			t.Fatalf("rollout history has no %q:\n%s", want, history)
		}
	}
	run("", "rollout", "undo", "deployment/kweb", "--to-revision=1")
	rolloutStatus()
	if out := run("", "get", "deploy/kweb", "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision} {.spec.template.spec.containers[0].image}"); out != "4 example.invalid/kweb:1" {
		t.Fatalf("after undo: %q", out)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
