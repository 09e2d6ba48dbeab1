package main

import (
	"strings"
	"testing"
	"time"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// withToken returns a cluster view whose kubectl authenticates with a
// bearer token only (no client certificate, not the admin token).
func (c *rbacCluster) withToken(name, token string) *cluster {
	c.t.Helper()
	return c.withCredentials(name, func(a *clientcmdapi.AuthInfo) {
		a.Token, a.ClientCertificateData, a.ClientKeyData = token, nil, nil
	})
}

// TestKubectlServiceAccountRBAC: a ServiceAccount's token from `kubectl
// create token` authenticates as the account, is forbidden until a
// RoleBinding grants it a Role, and is then allowed exactly what the role
// says; `kubectl auth can-i --as system:serviceaccount:…` agrees with what
// the token itself gets, before and after; deleting the binding takes the
// grant away again.
func TestKubectlServiceAccountRBAC(t *testing.T) {
	c := startRBACServer(t)
	admin := c.cluster
	admin.ok("", "create", "namespace", "shop")
	admin.ok("", "-n", "shop", "create", "serviceaccount", "robot")
	admin.ok("", "-n", "shop", "create", "configmap", "prices", "--from-literal", "apple=1")
	token := strings.TrimSpace(admin.ok("", "-n", "shop", "create", "token", "robot", "--duration", "30m"))
	robot := c.withToken("robot", token)
	const who = "system:serviceaccount:shop:robot"
	contains(t, "whoami", robot.ok("", "auth", "whoami"), who, "system:serviceaccounts:shop")

	type step struct {
		what    string
		allowed bool
		canI    []string
		args    []string
	}
	steps := []step{
		{"get configmap prices", true, []string{"get", "configmaps/prices", "-n", "shop"}, []string{"-n", "shop", "get", "configmap", "prices"}},
		{"list configmaps", true, []string{"list", "configmaps", "-n", "shop"}, []string{"-n", "shop", "get", "configmaps"}},
		{"delete configmap", false, []string{"delete", "configmaps/prices", "-n", "shop"}, []string{"-n", "shop", "delete", "configmap", "prices"}},
		{"list configmaps in default", false, []string{"list", "configmaps", "-n", "default"}, []string{"-n", "default", "get", "configmaps"}},
		{"list secrets", false, []string{"list", "secrets", "-n", "shop"}, []string{"-n", "shop", "get", "secrets"}},
	}
	run := func(phase string, grant bool) {
		t.Helper()
		for _, s := range steps {
			want := s.allowed && grant
			var r result
			deadline := time.Now().Add(10 * time.Second) // bindings reach the authorizer by watch
			for {
				r = robot.kubectl("", s.args...)
				if (r.code == 0) == want || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if (r.code == 0) != want {
				t.Errorf("%s: %s with the token: exit %d, want allowed=%v\n%s%s", phase, s.what, r.code, want, r.out, r.err)
			}
			if !want && !strings.Contains(r.err, "forbidden") {
				t.Errorf("%s: %s: refusal is not Forbidden: %s", phase, s.what, r.err)
			}
			wantCanI := map[bool]string{true: "yes", false: "no"}[want]
			if got := canI(admin, append(s.canI, "--as", who)...); got != wantCanI {
				t.Errorf("%s: can-i %v --as %s: %q, want %q", phase, s.canI, who, got, wantCanI)
			}
			if got := canI(robot, s.canI...); got != wantCanI {
				t.Errorf("%s: can-i %v with the token: %q, want %q", phase, s.canI, got, wantCanI)
			}
		}
	}
	run("before the binding", false)
	contains(t, "Kubernetes' wording", robot.fails("", "-n", "shop", "get", "configmaps"),
		`configmaps is forbidden: User "`+who+`" cannot list resource "configmaps" in API group "" in the namespace "shop"`)

	admin.ok("", "-n", "shop", "create", "role", "price-reader", "--verb", "get,list", "--resource", "configmaps")
	admin.ok("", "-n", "shop", "create", "rolebinding", "robot-reads", "--role", "price-reader", "--serviceaccount", "shop:robot")
	run("with the binding", true)

	admin.ok("", "-n", "shop", "delete", "rolebinding", "robot-reads")
	run("after the binding is deleted", false)
}
