package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startVAPServer runs a skiff server of its own for the
// ValidatingAdmissionPolicy scenarios, on this suite's loopback range
// (127.138.0.0/16), with an audit log at Metadata level.
func startVAPServer(t *testing.T) (*cluster, string) {
	t.Helper()
	auditLog := filepath.Join(t.TempDir(), "audit", "audit.log")
	c := startOwnServer(t, "vap-test", "127.138", "--audit-log", auditLog, "--audit-level", "Metadata")
	return c, auditLog
}

// demoPolicy is the example of Kubernetes' ValidatingAdmissionPolicy page,
// bound with Deny to namespaces labelled environment=test and with Warn
// and Audit to those labelled environment=staging.
const demoPolicy = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: "demo-policy.example.com"
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups:   ["apps"]
      apiVersions: ["v1"]
      operations:  ["CREATE", "UPDATE"]
      resources:   ["deployments"]
  validations:
    - expression: "object.spec.replicas <= 5"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: "demo-binding-test.example.com"
spec:
  policyName: "demo-policy.example.com"
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels:
        environment: test
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: "demo-binding-staging.example.com"
spec:
  policyName: "demo-policy.example.com"
  validationActions: [Warn, Audit]
  matchResources:
    namespaceSelector:
      matchLabels:
        environment: staging
`

// paramPolicy takes its limit from a ConfigMap named by the binding.
const paramPolicy = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: replica-limit.example.com
spec:
  paramKind:
    apiVersion: v1
    kind: ConfigMap
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments"]
  validations:
  - expression: "object.spec.replicas <= int(params.data.maxReplicas)"
    messageExpression: "'replicas must be no greater than ' + params.data.maxReplicas"
    reason: Invalid
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: replica-limit-binding.example.com
spec:
  policyName: replica-limit.example.com
  validationActions: [Deny]
  paramRef:
    name: replica-limits
    namespace: default
    parameterNotFoundAction: Deny
  matchResources:
    namespaceSelector:
      matchLabels:
        environment: limited
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: replica-limits
  namespace: default
data:
  maxReplicas: "2"
`

// TestKubectlValidatingAdmissionPolicy: with real kubectl, the docs'
// example policy refuses a 6-replica Deployment in a namespace its Deny
// binding selects, with Kubernetes' words, and admits it in an
// unselected one; a Warn binding shows kubectl's "Warning:" line and its
// Audit action lands in the audit log; a policy with a ConfigMap param
// uses the param's value; an expression that does not compile is a 422
// on the policy; kubectl lists the policies.
func TestKubectlValidatingAdmissionPolicy(t *testing.T) {
	c, auditLog := startVAPServer(t)
	for ns, env := range map[string]string{"test": "test", "staging": "staging", "limited": "limited", "other": ""} {
		c.ok("", "create", "namespace", ns)
		if env != "" {
			c.ok("", "label", "namespace", ns, "environment="+env)
		}
	}
	c.ok(demoPolicy, "apply", "-f", "-")

	want := `deployments.apps "big" is forbidden: ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5`
	// The policy reaches admission through the server's informers: poll
	// (bounded) until the first refusal.
	eventually(t, 10*time.Second, func() error {
		r := c.kubectl("", "-n", "test", "create", "deployment", "big", "--image=example.com/app:1", "--replicas=6")
		if r.code == 0 {
			c.ok("", "-n", "test", "delete", "deployment", "big", "--wait=false")
			return fmt.Errorf("6 replicas admitted in namespace test")
		}
		if !strings.Contains(r.err, want) {
			return fmt.Errorf("kubectl said %q, want %q", r.err, want)
		}
		return nil
	})
	c.ok("", "-n", "other", "create", "deployment", "big", "--image=example.com/app:1", "--replicas=6")
	c.ok("", "-n", "test", "create", "deployment", "small", "--image=example.com/app:1", "--replicas=5")
	if msg := c.fails("", "-n", "test", "patch", "deployment", "small", "-p", `{"spec":{"replicas":7}}`); !strings.Contains(msg, "denied request: failed expression: object.spec.replicas <= 5") {
		t.Fatalf("patch to 7 replicas: %s", msg)
	}
	// deployments/scale is a resource of its own to a rule, as in
	// Kubernetes: the policy names only deployments.
	c.ok("", "-n", "test", "scale", "deployment", "small", "--replicas=7")

	r := c.kubectl("", "-n", "staging", "create", "deployment", "big", "--image=example.com/app:1", "--replicas=6")
	warn := "Warning: Validation failed for ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-staging.example.com': failed expression: object.spec.replicas <= 5"
	if r.code != 0 || !strings.Contains(r.err, warn) {
		t.Fatalf("Warn binding: exit %d, stderr %q, want %q", r.code, r.err, warn)
	}
	eventually(t, 10*time.Second, func() error {
		b, err := os.ReadFile(auditLog)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, `"namespace":"staging","name":"big"`) && strings.Contains(line, `"verb":"create"`) &&
				strings.Contains(line, `validation.policy.admission.k8s.io/validation_failure`) && strings.Contains(line, `demo-binding-staging.example.com`) {
				return nil
			}
		}
		return fmt.Errorf("no audit event for the staging deployment with the validation_failure annotation")
	})

	c.ok(paramPolicy, "apply", "-f", "-")
	eventually(t, 10*time.Second, func() error {
		r := c.kubectl("", "-n", "limited", "create", "deployment", "three", "--image=example.com/app:1", "--replicas=3")
		if r.code == 0 {
			c.ok("", "-n", "limited", "delete", "deployment", "three", "--wait=false")
			return fmt.Errorf("3 replicas admitted with maxReplicas 2")
		}
		if w := "ValidatingAdmissionPolicy 'replica-limit.example.com' with binding 'replica-limit-binding.example.com' denied request: replicas must be no greater than 2"; !strings.Contains(r.err, w) {
			return fmt.Errorf("kubectl said %q, want %q", r.err, w)
		}
		return nil
	})
	c.ok("", "-n", "limited", "create", "deployment", "two", "--image=example.com/app:1", "--replicas=2")
	// A new limit in the param is used without touching the policy.
	c.ok("", "-n", "default", "patch", "configmap", "replica-limits", "-p", `{"data":{"maxReplicas":"4"}}`)
	eventually(t, 10*time.Second, func() error {
		r := c.kubectl("", "-n", "limited", "create", "deployment", "three", "--image=example.com/app:1", "--replicas=3")
		if r.code != 0 {
			return fmt.Errorf("3 replicas with maxReplicas 4: %s", r.err)
		}
		return nil
	})

	bad := strings.Replace(strings.SplitN(demoPolicy, "---", 2)[0], "object.spec.replicas <= 5", "object.spec.replicas <=", 1)
	bad = strings.Replace(bad, `"demo-policy.example.com"`, "broken", 1)
	if msg := c.fails(bad, "apply", "-f", "-"); !strings.Contains(msg, `The ValidatingAdmissionPolicy "broken" is invalid: spec.validations[0].expression: Invalid value: "object.spec.replicas <=": compilation failed`) {
		t.Fatalf("policy that does not compile: %s", msg)
	}
	// kubectl's columns: Kubernetes' printers for both kinds.
	out := c.ok("", "get", "validatingadmissionpolicies")
	if !regexp.MustCompile(`(?m)^NAME\s+VALIDATIONS\s+PARAMKIND\s+AGE\n`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^demo-policy\.example\.com\s+1\s+<unset>\s+\d+s$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^replica-limit\.example\.com\s+1\s+v1/ConfigMap\s+\d+s$`).MatchString(out) || strings.Contains(out, "broken") {
		t.Fatalf("kubectl get validatingadmissionpolicies:\n%s", out)
	}
	// OpenAPI follows the registry: kubectl explain knows the kind.
	if out := c.ok("", "explain", "validatingadmissionpolicies.spec.validations"); !strings.Contains(out, "messageExpression") {
		t.Fatalf("kubectl explain validatingadmissionpolicies.spec.validations:\n%s", out)
	}
	out = c.ok("", "get", "validatingadmissionpolicybindings")
	if !regexp.MustCompile(`(?m)^replica-limit-binding\.example\.com\s+replica-limit\.example\.com\s+default/replica-limits\s+\d+s$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^demo-binding-staging\.example\.com\s+demo-policy\.example\.com\s+<unset>\s+\d+s$`).MatchString(out) {
		t.Fatalf("kubectl get validatingadmissionpolicybindings:\n%s", out)
	}
}
