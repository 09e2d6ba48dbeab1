package main

import (
	"bufio"
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

const widgetCRDYAML = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        description: A Widget is a thing the test makes.
        properties:
          spec:
            type: object
            required: [host]
            properties:
              replicas:
                type: integer
                minimum: 0
                maximum: 10
                default: 1
                description: How many copies of the widget to keep running.
              color:
                type: string
                enum: [red, blue]
                default: red
              host:
                type: string
          status:
            type: object
            properties:
              phase: {type: string}
              replicas: {type: integer}
`

func widgetYAML(name, spec string) string {
	return "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: " + name + "\n  namespace: crds\nspec:\n" + spec
}

// TestKubectlCustomResources is issue 21's CRD acceptance with real
// kubectl: a CRD with a schema, defaults, printer columns, shortNames and a
// status subresource; valid objects accepted with defaults applied and
// unknown fields pruned, invalid ones refused with the field named; get
// shows the columns; explain works; a watch sees add/modify/delete; status
// only changes through /status; deleting the CRD deletes its objects.
func TestKubectlCustomResources(t *testing.T) {
	c := startOwnServer(t, "crd-test", "127.132")
	c.ok(widgetCRDYAML, "apply", "-f", "-")
	c.ok("", "wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=20s")
	contains(t, "crd columns", c.ok("", "get", "crd"), "widgets.example.com")
	c.ok("", "create", "namespace", "crds")

	// A watch from the start, as kubectl prints it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	watch := exec.CommandContext(ctx, "kubectl", "--kubeconfig", c.kubeconfig, "--cache-dir", c.cacheDir,
		"get", "widgets", "-n", "crds", "-w", "--output-watch-events", "--no-headers")
	stdout, _ := watch.StdoutPipe()
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer watch.Process.Kill() // our own child, by its PID
	events := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			events <- sc.Text()
		}
		close(events)
	}()

	// Unknown fields: kubectl's default (strict) validation is refused by
	// the server, naming the field; without validation they are pruned.
	contains(t, "strict", c.fails(widgetYAML("w1", "  host: a.example\n  bogus: 1\n"), "apply", "-f", "-"),
		`unknown field "spec.bogus"`)
	c.ok(widgetYAML("w1", "  host: a.example\n  bogus: 1\n"), "apply", "--validate=false", "-f", "-")
	if got := c.ok("", "get", "widget", "w1", "-n", "crds", "-o", "jsonpath={.spec.replicas} {.spec.color} {.spec.bogus}"); got != "1 red " {
		t.Fatalf("defaults and pruning: %q", got)
	}

	// A client-side re-apply (kubectl's three-way JSON merge patch) changes
	// what the manifest changed and keeps the defaults.
	c.ok(widgetYAML("w1", "  host: a.example\n  color: blue\n"), "apply", "-f", "-")
	if got := c.ok("", "get", "widget", "w1", "-n", "crds", "-o", "jsonpath={.spec.replicas} {.spec.color} {.metadata.generation}"); got != "1 blue 2" {
		t.Fatalf("after re-apply: %q", got)
	}

	// Invalid objects, with the field named as Kubernetes words it.
	contains(t, "maximum", c.fails(widgetYAML("w2", "  host: b\n  replicas: 20\n"), "apply", "-f", "-"),
		`The Widget "w2" is invalid`, "spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10")
	contains(t, "enum", c.fails(widgetYAML("w2", "  host: b\n  color: green\n"), "apply", "-f", "-"),
		`spec.color: Unsupported value: "green": supported values: "red", "blue"`)
	contains(t, "required", c.fails(widgetYAML("w2", "  color: blue\n"), "apply", "-f", "-"), "spec.host: Required value")

	// Printer columns, by short name and by the "all" category.
	out := c.ok("", "get", "wd", "-n", "crds")
	if !regexp.MustCompile(`(?m)^NAME\s+REPLICAS\s+COLOR\s+PHASE\s+AGE\nw1\s+1\s+blue\s+\S+$`).MatchString(strings.TrimSpace(out)) {
		t.Fatalf("get wd:\n%s", out)
	}
	contains(t, "get all", c.ok("", "get", "all", "-n", "crds"), "widget.example.com/w1")

	// explain reads the CRD's schema from OpenAPI v3.
	contains(t, "explain", c.ok("", "explain", "widget.spec.replicas"), "How many copies of the widget to keep running.")
	contains(t, "explain", c.ok("", "explain", "widgets"), "A Widget is a thing the test makes.")

	// Status only through the subresource.
	c.ok("", "patch", "widget", "w1", "-n", "crds", "--type=merge", "-p", `{"status":{"phase":"Ready"}}`)
	if got := c.ok("", "get", "widget", "w1", "-n", "crds", "-o", "jsonpath={.status.phase}"); got != "" {
		t.Fatalf("the main resource changed the status: %q", got)
	}
	c.ok("", "patch", "widget", "w1", "-n", "crds", "--subresource=status", "--type=merge", "-p", `{"status":{"phase":"Ready","replicas":1},"spec":{"replicas":9}}`)
	if got := c.ok("", "get", "widget", "w1", "-n", "crds", "-o", "jsonpath={.status.phase} {.spec.replicas}"); got != "Ready 1" {
		t.Fatalf("after the status patch: %q", got)
	}

	// Scale through the scale subresource.
	c.ok("", "scale", "widget", "w1", "-n", "crds", "--replicas=3")
	if got := c.ok("", "get", "widget", "w1", "-n", "crds", "-o", "jsonpath={.spec.replicas}"); got != "3" {
		t.Fatalf("after kubectl scale: %q", got)
	}

	// Server-side apply of a custom object.
	c.ok(widgetYAML("w3", "  host: c\n  color: blue\n"), "apply", "--server-side", "-f", "-")
	c.ok("", "delete", "widget", "w3", "-n", "crds")

	want := []string{"ADDED", "MODIFIED", "MODIFIED", "MODIFIED", "ADDED", "DELETED"}
	var seen []string
	timeout := time.After(20 * time.Second)
	for len(seen) < len(want) {
		select {
		case l, ok := <-events:
			if !ok {
				t.Fatalf("watch ended after %v", seen)
			}
			seen = append(seen, strings.Fields(l)[0])
		case <-timeout:
			t.Fatalf("watch saw %v, want %v", seen, want)
		}
	}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Errorf("watch saw %v, want %v", seen, want)
	}

	// Deleting the CRD deletes its objects; kubectl waits for it to go.
	start := time.Now()
	c.ok("", "delete", "crd", "widgets.example.com", "--timeout=60s")
	t.Logf("kubectl delete crd (1 object left) took %v", time.Since(start))
	// kubectl may still have the resource in its discovery cache: then the
	// list itself is 404.
	if gone := c.fails("", "get", "widgets", "-n", "crds"); !strings.Contains(gone, `the server doesn't have a resource type "widgets"`) &&
		!strings.Contains(gone, "NotFound") {
		t.Fatalf("widgets still served after the CRD was deleted:\n%s", gone)
	}
	c.ok(widgetCRDYAML, "apply", "-f", "-")
	c.ok("", "wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=20s")
	if r := c.kubectl("", "get", "widgets", "-n", "crds"); r.code != 0 || !strings.Contains(r.err, "No resources found") {
		t.Fatalf("after re-creating the CRD: exit %d\n%s%s", r.code, r.out, r.err)
	}
}
