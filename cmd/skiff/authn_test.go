package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
)

// TestKubectlServiceAccountTokenAndUserCertificate: `kubectl create
// token` mints a ServiceAccount token (with --duration, and bound to a pod)
// and `kubectl auth whoami` with it names the ServiceAccount; `skiff
// kubeconfig --user alice --group dev` makes a kubeconfig with a client
// certificate that whoami shows as alice in dev.
func TestKubectlServiceAccountTokenAndUserCertificate(t *testing.T) {
	c, bin := startOwnServer(t, "authn", "127.134"), buildSkiffOnce(t)
	// The controller makes the default ServiceAccount a moment after start.
	testutil.Eventually(t, 30*time.Second, func() error {
		if r := c.kubectl("", "get", "serviceaccount", "default", "-n", "default"); r.code != 0 {
			return &cmdErr{r.err}
		}
		return nil
	})
	out := c.ok("", "get", "configmap", "kube-root-ca.crt", "-o", "jsonpath={.data.ca\\.crt}")
	contains(t, "kube-root-ca.crt", out, "-----BEGIN CERTIFICATE-----")

	tok := strings.TrimSpace(c.ok("", "create", "token", "default", "--duration", "15m"))
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("kubectl create token printed %q", tok)
	}
	out = c.ok("", "--token", tok, "auth", "whoami")
	contains(t, "whoami with the token", out, "system:serviceaccount:default:default",
		"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated")
	t.Logf("kubectl auth whoami:\n%s", out)
	errOut := c.fails("", "create", "token", "default", "--duration", "5m")
	contains(t, "a 5 minute token", errOut, "may not specify a duration less than 10 minutes")

	// Bound to a pod: whoami shows the pod; the pod's deletion ends it.
	c.ok(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"holder"},"spec":{"nodeName":"nowhere","containers":[{"name":"c","image":"x"}]}}`,
		"apply", "-f", "-")
	bound := strings.TrimSpace(c.ok("", "create", "token", "default", "--bound-object-kind", "Pod", "--bound-object-name", "holder"))
	out = c.ok("", "--token", bound, "auth", "whoami", "-o", "json")
	contains(t, "whoami with the bound token", out, `"authentication.kubernetes.io/pod-name"`, `"holder"`)
	c.ok("", "delete", "pod", "holder", "--grace-period", "0", "--force")
	testutil.Eventually(t, 30*time.Second, func() error {
		r := c.kubectl("", "--token", bound, "auth", "whoami")
		if r.code == 0 || !strings.Contains(r.err, "Unauthorized") {
			return &cmdErr{"still works: " + r.out + r.err}
		}
		return nil
	})

	// A user's client certificate, from the server's data directory.
	alice := filepath.Join(t.TempDir(), "alice.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if b, err := exec.CommandContext(ctx, bin, "kubeconfig", "--data-dir", c.dir, "--user", "alice", "--group", "dev", "--group", "ops",
		"--days", "2", "-o", alice).CombinedOutput(); err != nil {
		t.Fatalf("skiff kubeconfig --user: %v\n%s", err, b)
	}
	kc, err := os.ReadFile(alice)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(kc), "token") || !strings.Contains(string(kc), "client-certificate-data") {
		t.Fatalf("alice's kubeconfig:\n%s", kc)
	}
	a := *c
	a.kubeconfig = alice
	out = a.ok("", "auth", "whoami")
	contains(t, "whoami as alice", out, "alice", "dev", "ops", "system:authenticated")
	if strings.Contains(out, "system:masters") {
		t.Errorf("alice is in system:masters:\n%s", out)
	}
	t.Logf("kubectl auth whoami (alice):\n%s", out)
	// Older kubectls ask for SelfSubjectReview in v1beta1 (1.27) first;
	// they are installed beside kubectl.
	kubectl, _ := exec.LookPath("kubectl")
	real, _ := filepath.EvalSymlinks(kubectl)
	for _, v := range []string{"kubectl.1.27", "kubectl.1.28", "kubectl.1.33"} {
		path, err := exec.LookPath(filepath.Join(filepath.Dir(real), v))
		if err != nil {
			t.Logf("%s not installed: skipped", v)
			continue
		}
		b, err := exec.CommandContext(ctx, path, "--kubeconfig", alice, "auth", "whoami").CombinedOutput()
		if err != nil || !strings.Contains(string(b), "alice") || !strings.Contains(string(b), "dev") {
			t.Errorf("%s auth whoami: %v\n%s", v, err, b)
		}
	}
	if b, err := exec.CommandContext(ctx, bin, "kubeconfig", "--data-dir", t.TempDir(), "--user", "bob").CombinedOutput(); err == nil {
		t.Errorf("a kubeconfig from an empty data directory:\n%s", b)
	}
}

type cmdErr struct{ s string }

func (e *cmdErr) Error() string { return e.s }
