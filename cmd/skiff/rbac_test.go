package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/apiserver/pki"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// rbacCluster is a skiff server of the RBAC tests' own, on their loopback
// range (127.135.0.0/16), with a kubeconfig per identity.
type rbacCluster struct {
	*cluster
	pkiDir string
}

func startRBACServer(t *testing.T) *rbacCluster {
	t.Helper()
	c := startOwnServer(t, "rbac-test", "127.135")
	return &rbacCluster{cluster: c, pkiDir: filepath.Join(c.dir, "pki")}
}

// as returns a cluster view whose kubectl authenticates with a client
// certificate from the cluster CA: CN user, O groups.
func (c *rbacCluster) as(name string, groups ...string) *cluster {
	c.t.Helper()
	cert, err := pki.IssueUserCert(c.pkiDir, name, groups, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.withCredentials(strings.ReplaceAll(name, ":", "_"), func(a *clientcmdapi.AuthInfo) {
		a.Token, a.ClientCertificateData, a.ClientKeyData = "", cert.CertPEM, cert.KeyPEM
	})
}

// withCredentials returns a cluster view whose kubectl uses the admin
// kubeconfig with its credentials replaced by set, written as name.kubeconfig.
func (c *rbacCluster) withCredentials(name string, set func(a *clientcmdapi.AuthInfo)) *cluster {
	c.t.Helper()
	cfg, err := clientcmd.LoadFromFile(c.kubeconfig)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, a := range cfg.AuthInfos {
		set(a)
	}
	path := filepath.Join(c.dir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		c.t.Fatal(err)
	}
	u := *c.cluster
	u.kubeconfig = path
	return &u
}

// canI runs kubectl auth can-i and returns its answer.
func canI(c *cluster, args ...string) string {
	c.t.Helper()
	r := c.kubectl("", append([]string{"auth", "can-i"}, args...)...)
	return strings.TrimSpace(r.out)
}

// TestKubectlRBAC: a user certificate is forbidden, in Kubernetes' words,
// until a RoleBinding grants it a Role; then it may do exactly what the
// role says (get and list pods in one namespace: not delete, not in
// another namespace); `kubectl auth can-i` agrees, as the user and
// through --as; --list shows the rules; a non-admin may not impersonate;
// a user cannot grant itself more than it holds.
func TestKubectlRBAC(t *testing.T) {
	c := startRBACServer(t)
	admin := c.cluster
	alice := c.as("alice", "dev")

	admin.ok("", "create", "namespace", "team-a")
	admin.ok("", "create", "namespace", "team-b")
	admin.ok("", "-n", "team-a", "run", "web", "--image", "example.com/web:1", "--restart", "Never")

	msg := alice.fails("", "-n", "team-a", "get", "pods")
	contains(t, "forbidden list", msg, `pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "team-a"`)
	if got := canI(admin, "list", "pods", "-n", "team-a", "--as", "alice"); got != "no" {
		t.Errorf("can-i list pods --as alice before the binding: %q, want no", got)
	}

	admin.ok("", "-n", "team-a", "create", "role", "pod-reader", "--verb", "get,list,watch", "--resource", "pods")
	admin.ok("", "-n", "team-a", "create", "rolebinding", "alice-reads", "--role", "pod-reader", "--user", "alice")

	check := func(what string, allowed bool, args ...string) {
		t.Helper()
		var r result
		deadline := time.Now().Add(10 * time.Second) // the binding reaches the authorizer's cache by watch
		for {
			r = alice.kubectl("", args...)
			if (r.code == 0) == allowed || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if (r.code == 0) != allowed {
			t.Errorf("%s: exit %d, want allowed=%v\n%s%s", what, r.code, allowed, r.out, r.err)
		}
	}
	check("list pods in team-a", true, "-n", "team-a", "get", "pods")
	check("get pod web", true, "-n", "team-a", "get", "pod", "web")
	check("delete pod web", false, "-n", "team-a", "delete", "pod", "web", "--wait=false")
	check("list pods in team-b", false, "-n", "team-b", "get", "pods")
	check("list deployments in team-a", false, "-n", "team-a", "get", "deployments")
	contains(t, "forbidden delete", alice.fails("", "-n", "team-a", "delete", "pod", "web", "--wait=false"),
		`pods "web" is forbidden: User "alice" cannot delete resource "pods" in API group "" in the namespace "team-a"`)

	for _, q := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "pods", "-n", "team-a"}, "yes"},
		{[]string{"get", "pods/web", "-n", "team-a"}, "yes"},
		{[]string{"delete", "pods", "-n", "team-a"}, "no"},
		{[]string{"list", "pods", "-n", "team-b"}, "no"},
		{[]string{"create", "deployments", "-n", "team-a"}, "no"},
	} {
		if got := canI(alice, q.args...); got != q.want {
			t.Errorf("alice: can-i %v: %q, want %q", q.args, got, q.want)
		}
		if got := canI(admin, append(q.args, "--as", "alice")...); got != q.want {
			t.Errorf("admin: can-i %v --as alice: %q, want %q", q.args, got, q.want)
		}
	}
	// A group's grant reaches its members, through --as-group too.
	admin.ok("", "-n", "team-b", "create", "rolebinding", "dev-reads", "--clusterrole", "view", "--group", "dev")
	check("list pods in team-b through group dev", true, "-n", "team-b", "get", "pods")
	if got := canI(admin, "list", "pods", "-n", "team-b", "--as", "bob", "--as-group", "dev"); got != "yes" {
		t.Errorf("can-i --as bob --as-group dev: %q, want yes", got)
	}

	list := alice.ok("", "-n", "team-a", "auth", "can-i", "--list")
	contains(t, "can-i --list", list, "pods", "[get list watch]", "selfsubjectaccessreviews.authorization.k8s.io")

	// Impersonation is for who holds the impersonate verb.
	contains(t, "impersonation by alice", alice.fails("", "-n", "team-a", "get", "pods", "--as", "bob"),
		`users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope`)
	if got := canI(admin, "list", "pods", "-n", "team-a", "--as", "alice"); got != "yes" {
		t.Errorf("admin impersonating alice: %q, want yes", got)
	}

	// Escalation: alice may not create a role with rules she lacks, nor
	// bind a role she does not hold.
	admin.ok("", "-n", "team-a", "create", "role", "rb-writer", "--verb", "create,get,list", "--resource", "roles,rolebindings")
	admin.ok("", "-n", "team-a", "create", "rolebinding", "alice-rb", "--role", "rb-writer", "--user", "alice")
	check("create a role with what alice holds", true, "-n", "team-a", "create", "role", "mine", "--verb", "get", "--resource", "pods")
	contains(t, "escalation", alice.fails("", "-n", "team-a", "create", "role", "more", "--verb", "delete", "--resource", "pods"),
		`is attempting to grant RBAC permissions not currently held`)
	contains(t, "bind escalation", alice.fails("", "-n", "team-a", "create", "rolebinding", "alice-admin", "--clusterrole", "admin", "--user", "alice"),
		`is attempting to grant RBAC permissions not currently held`)
}

// TestKubectlNodeAuthorizer: a node's certificate (system:node:n1 in
// system:nodes) reads a Secret that a pod bound to n1 uses, and not one
// that only a pod on n2 uses, in the Node authorizer's words.
func TestKubectlNodeAuthorizer(t *testing.T) {
	c := startRBACServer(t)
	admin := c.cluster
	n1 := c.as("system:node:n1", "system:nodes")
	admin.ok("", "create", "secret", "generic", "s1", "--from-literal", "k=v")
	admin.ok("", "create", "secret", "generic", "s2", "--from-literal", "k=v")
	admin.ok("", "create", "configmap", "c2", "--from-literal", "k=v")
	// Pods bound to n1 and n2 by nodeName, using a Secret through envFrom
	// and a ConfigMap through a projected volume.
	pod := func(name, node, secret, configMap string) string {
		return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"` + name + `"},"spec":{"nodeName":"` + node + `",
"containers":[{"name":"c","image":"example.com/x:1","envFrom":[{"secretRef":{"name":"` + secret + `"}}]}],
"volumes":[{"name":"v","projected":{"sources":[{"configMap":{"name":"` + configMap + `"}}]}}]}}`
	}
	admin.ok("", "create", "configmap", "c1", "--from-literal", "k=v")
	admin.ok(pod("on-n1", "n1", "s1", "c1"), "apply", "-f", "-")
	admin.ok(pod("on-n2", "n2", "s2", "c2"), "apply", "-f", "-")

	deadline := time.Now().Add(10 * time.Second)
	for n1.kubectl("", "get", "secret", "s1").code != 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	n1.ok("", "get", "secret", "s1")
	contains(t, "secret of n2's pod", n1.fails("", "get", "secret", "s2"),
		`secrets "s2" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node 'n1' and this object`)
	contains(t, "list secrets", n1.fails("", "get", "secrets"), `cannot list resource "secrets"`)
	n1.ok("", "get", "configmap", "c1")
	// c2 is used by n2's pod only; once a pod on n1 uses it too, n1 may
	// read it (the graph follows pods by watch).
	contains(t, "configmap of n2's pod", n1.fails("", "get", "configmap", "c2"), "no relationship found between node 'n1' and this object")
	admin.ok(pod("on-n1-too", "n1", "s1", "c2"), "apply", "-f", "-")
	deadline = time.Now().Add(10 * time.Second)
	for n1.kubectl("", "get", "configmap", "c2").code != 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	n1.ok("", "get", "configmap", "c2")
	// Its own Node only; nodes are readable.
	n1.ok("", "get", "nodes")
	contains(t, "create another node", n1.fails(`{"apiVersion":"v1","kind":"Node","metadata":{"name":"n9"}}`, "create", "-f", "-"),
		`nodes "n9" is forbidden: node "n1" is not allowed to modify node "n9"`)
	contains(t, "other node", n1.fails("", "label", "node", "rbac-test", "x=y"),
		`User "system:node:n1" cannot patch resource "nodes" in API group "" at the cluster scope: node 'n1' cannot modify node 'rbac-test'`)
}
