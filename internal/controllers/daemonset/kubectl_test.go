package daemonset_test

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
kind: DaemonSet
metadata:
  name: kagent
spec:
  selector:
    matchLabels: {app: kagent}
  template:
    metadata:
      labels: {app: kagent}
    spec:
      nodeSelector: {skiff.test/fake-node: "true"}
      containers:
      - name: app
        image: example.invalid/kagent:1
`

// The real kubectl (v1.32) drives a DaemonSet through apply, rollout
// status, set image, rollout history (read from the ControllerRevisions)
// and rollout undo (which applies a revision's patch), with this test
// standing in for the kubelet of two nodes.
func TestKubectl(t *testing.T) {
	if _, err := exec.LookPath(kubectlPath); err != nil {
		t.Skipf("kubectl not installed at %s", kubectlPath)
	}
	c := controllertest.Start(t)
	c.AddNode(t, "fake-1", nil, nil)
	c.AddNode(t, "fake-2", nil, nil)
	c.StartKubelet(t, "fake-1", "fake-2")
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
		out := run("", "rollout", "status", "daemonset/kagent", "--timeout=60s")
		if !strings.Contains(out, `daemon set "kagent" successfully rolled out`) {
			t.Fatalf("rollout status: %s", out)
		}
	}
	image := func() string {
		return run("", "get", "ds/kagent", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.status.updatedNumberScheduled}/{.status.desiredNumberScheduled}")
	}

	if out := run(manifest, "apply", "-f", "-"); !strings.Contains(out, "daemonset.apps/kagent created") {
		t.Fatalf("apply: %s", out)
	}
	rolloutStatus()
	run("", "set", "image", "daemonset/kagent", "app=example.invalid/kagent:2")
	rolloutStatus()
	if got := image(); got != "example.invalid/kagent:2 2/2" {
		t.Fatalf("after set image: %q", got)
	}
	history := run("", "rollout", "history", "daemonset/kagent")
	for _, want := range []string{"REVISION", "1 ", "2 "} {
		if !strings.Contains(history, want) {
			t.Fatalf("rollout history has no %q:\n%s", want, history)
		}
	}
	run("", "rollout", "undo", "daemonset/kagent", "--to-revision=1")
	rolloutStatus()
	if got := image(); got != "example.invalid/kagent:1 2/2" {
		t.Fatalf("after undo: %q", got)
	}
	if out := run("", "get", "pods", "-l", "app=kagent", "-o", "jsonpath={.items[*].spec.containers[0].image}"); out != "example.invalid/kagent:1 example.invalid/kagent:1" {
		t.Fatalf("pods after undo: %q", out)
	}
}
