package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// oldKubectl finds kubectl.1.27-style binaries: on PATH, or beside the
// kubectl on PATH (where the cloud SDK installs them), following its link.
func oldKubectl(version string) (string, bool) {
	name := "kubectl." + version
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	k, err := exec.LookPath("kubectl")
	if err != nil {
		return "", false
	}
	if real, err := filepath.EvalSymlinks(k); err == nil {
		k = real
	}
	p := filepath.Join(filepath.Dir(k), name)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return p, true
	}
	return "", false
}

// oldKubectlRun runs one kubectl binary with its own cache, bounded in time.
func oldKubectlRun(t *testing.T, bin, kubeconfig, cache, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig, "--cache-dir", cache}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", filepath.Base(bin), args, err)
	}
	return out.String(), errb.String(), code
}

const oapiManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  strategy: {rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}}
  template:
    metadata: {labels: {app: web}}
    spec:
      runtimeClassName: wasm
      containers:
      - name: web
        image: 127.133.0.1:9/oapi/web:1
        args: ["--port", "8080"]
        env: [{name: MODE, value: demo}]
        ports: [{containerPort: 8080, name: http}]
        resources: {limits: {cpu: 1, memory: 64Mi}, requests: {cpu: 100m}}
      - name: side
        image: 127.133.0.1:9/oapi/side:1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data: {greeting: hello}
`

// TestKubectlOldVersionsApplyAndExplain runs kubectl 1.27 and 1.28, which
// read /openapi/v2 before apply and explain, against a real server: apply
// of a Deployment, a Service and a ConfigMap without --validate=false
// (create, then a change that kubectl sends as a strategic merge patch built
// from the v2 schema), --validate=strict naming an unknown field, and
// explain through both the v3 and the v2 renderer.
func TestKubectlOldVersionsApplyAndExplain(t *testing.T) {
	versions := map[string]string{}
	for _, v := range []string{"1.27", "1.28"} {
		if bin, ok := oldKubectl(v); ok {
			versions[v] = bin
		}
	}
	if len(versions) == 0 {
		t.Skip("neither kubectl.1.27 nor kubectl.1.28 is installed (on PATH or beside kubectl)")
	}
	kubeconfig := startOwnServer(t, "oapi-test", "127.133").kubeconfig
	for _, v := range []string{"1.27", "1.28"} {
		t.Run(v, func(t *testing.T) {
			bin, ok := versions[v]
			if !ok {
				t.Skipf("kubectl.%s is not installed (on PATH or beside kubectl)", v)
			}
			cache := filepath.Join(t.TempDir(), "cache")
			ns := "oapi-" + strings.ReplaceAll(v, ".", "")
			run := func(stdin string, args ...string) (string, string, int) {
				return oldKubectlRun(t, bin, kubeconfig, cache, stdin, args...)
			}
			must := func(stdin string, args ...string) string {
				t.Helper()
				out, errOut, code := run(stdin, args...)
				if code != 0 {
					t.Fatalf("kubectl.%s %s: exit %d\nstdout: %s\nstderr: %s", v, strings.Join(args, " "), code, out, errOut)
				}
				return out
			}
			if out, _, _ := run("", "version", "--client", "-o", "json"); !strings.Contains(out, `"minor": "`+strings.TrimPrefix(v, "1.")+`"`) {
				t.Fatalf("%s is not kubectl %s:\n%s", bin, v, out)
			}
			must("", "create", "namespace", ns)

			// -v=6 shows what kubectl fetched: the v2 document, answered.
			out, errOut, code := run(oapiManifest, "-n", ns, "apply", "-f", "-", "-v=6")
			if code != 0 {
				t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
			}
			if !regexp.MustCompile(`GET https://\S+/openapi/v2\S* 200 OK`).MatchString(errOut) {
				t.Errorf("kubectl %s did not read /openapi/v2:\n%s", v, errOut)
			}
			for _, want := range []string{"deployment.apps/web created", "service/web created", "configmap/web-config created"} {
				if !strings.Contains(out, want) {
					t.Errorf("apply: no %q in:\n%s", want, out)
				}
			}

			// A second apply changes one container's image: kubectl patches
			// by the merge key the v2 document gives (name), so the other
			// container stays as it is.
			changed := strings.Replace(oapiManifest, "oapi/web:1", "oapi/web:2", 1)
			out = must(changed, "-n", ns, "apply", "-f", "-")
			if !strings.Contains(out, "deployment.apps/web configured") || !strings.Contains(out, "configmap/web-config unchanged") {
				t.Errorf("second apply:\n%s", out)
			}
			images := must("", "-n", ns, "get", "deployment", "web", "-o", `jsonpath={range .spec.template.spec.containers[*]}{.name}={.image} {end}`)
			if strings.TrimSpace(images) != "web=127.133.0.1:9/oapi/web:2 side=127.133.0.1:9/oapi/side:1" {
				t.Errorf("containers after the second apply: %q", images)
			}

			// --validate=strict: an unknown field fails, named, on an object
			// that exists (a patch) and on a new one (a create).
			typo := strings.Replace(changed, "  replicas: 1\n", "  replicas: 1\n  replicaz: 3\n", 1)
			_, errOut, code = run(typo, "-n", ns, "apply", "--validate=strict", "-f", "-")
			if code == 0 || !strings.Contains(errOut, `unknown field "spec.replicaz"`) {
				t.Errorf("apply --validate=strict with spec.replicaz on an existing Deployment: exit %d\n%s", code, errOut)
			}
			fresh := strings.Replace(typo, "name: web\n  labels", "name: web2\n  labels", 1)
			_, errOut, code = run(fresh, "-n", ns, "apply", "--validate=strict", "-f", "-")
			if code == 0 || !strings.Contains(errOut, `unknown field "spec.replicaz"`) {
				t.Errorf("apply --validate=strict with spec.replicaz on a new Deployment: exit %d\n%s", code, errOut)
			}
			if _, _, code := run("", "-n", ns, "get", "deployment", "web2"); code == 0 {
				t.Error("the rejected Deployment was created")
			}

			// explain, with the default (v3) renderer and with v2's.
			out = must("", "explain", "deployment.spec")
			for _, want := range []string{"KIND:", "Deployment", "DeploymentSpec", "replicas", "selector", "template"} {
				if !strings.Contains(out, want) {
					t.Errorf("explain deployment.spec: no %q in:\n%s", want, out)
				}
			}
			out = must("", "explain", "pod.spec.containers")
			for _, want := range []string{"KIND:", "Pod", "containers", "image", "ports"} {
				if !strings.Contains(out, want) {
					t.Errorf("explain pod.spec.containers: no %q in:\n%s", want, out)
				}
			}
			out = must("", "explain", "deployment.spec", "--output=plaintext-openapiv2")
			for _, want := range []string{"VERSION:  apps/v1", "RESOURCE: spec <Object>", "minReadySeconds\t<integer>", "selector\t<Object> -required-"} {
				if !strings.Contains(out, want) {
					t.Errorf("explain deployment.spec (v2): no %q in:\n%s", want, out)
				}
			}
			out = must("", "explain", "pod.spec.containers", "--output=plaintext-openapiv2")
			for _, want := range []string{"RESOURCE: containers <[]Object>", "name\t<string> -required-", "image\t<string>"} {
				if !strings.Contains(out, want) {
					t.Errorf("explain pod.spec.containers (v2): no %q in:\n%s", want, out)
				}
			}
		})
	}
}
