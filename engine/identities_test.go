package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/authz/bootstrap"
	"github.com/skiffhq/skiff/internal/sleeper"
	"github.com/skiffhq/skiff/internal/testutil"
)

// TestControllersRunUnderOwnIdentities: with RBAC on, the controllers act
// as their own service accounts and the scheduler as
// system:kube-scheduler, and a Deployment still reaches Ready (the
// deployment, replicaset, scheduler, node server and endpoints identities
// each did their part); a controller's identity is refused what its role
// does not grant; the aggregation controller fills view with a role
// labelled aggregate-to-view.
func TestControllersRunUnderOwnIdentities(t *testing.T) {
	ctx := context.Background()
	host := testRegistry(t, map[string][]byte{"idle:1": sleeper.Module()})
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "ids-1", APIListen: "127.135.1.1:0",
		PodCIDR: "127.135.8.0/22", ClusterPodCIDR: "127.135.8.0/21", ServiceCIDR: "127.135.64.0/18"})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	sel := map[string]string{"app": "ids"}
	two := int32(2)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "ids", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: idleTemplate("ids", host+"/idle:1")}}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, moreWait, func() error {
		got, err := cs.AppsV1().Deployments("default").Get(ctx, "ids", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.ReadyReplicas != 2 || got.Status.AvailableReplicas != 2 {
			return fmt.Errorf("deployment status %+v", got.Status)
		}
		return nil
	})

	as := func(u user.Info) kubernetes.Interface {
		e.mu.Lock()
		defer e.mu.Unlock()
		cfg, err := e.restConfigAsLocked(u)
		if err != nil {
			t.Fatal(err)
		}
		return kubernetes.NewForConfigOrDie(cfg)
	}
	dc := as(controllerUser(bootstrap.DeploymentController))
	if _, err := dc.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("deployment controller listing replicasets: %v", err)
	}
	_, err = dc.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	want := `secrets is forbidden: User "system:serviceaccount:kube-system:deployment-controller" cannot list resource "secrets" in API group "" in the namespace "default"`
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("deployment controller listing secrets: %v, want 403 %s", err, want)
	}
	err = dc.CoreV1().Nodes().Delete(ctx, "ids-1", metav1.DeleteOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("deployment controller deleting a node: %v, want 403", err)
	}
	sc := as(componentUser(bootstrap.SchedulerUser))
	if _, err := sc.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("scheduler creating a deployment: %v, want 403", err)
	}

	// Aggregation: a role labelled aggregate-to-view adds its rules to view.
	extra := rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{"example.com"}, Resources: []string{"widgets"}}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "widget-viewer",
		Labels: map[string]string{bootstrap.AggregateTo + "view": "true"}}, Rules: []rbacv1.PolicyRule{extra}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		for _, name := range []string{"view", "edit", "admin"} {
			r, err := cs.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			found := false
			for _, rule := range r.Rules {
				found = found || len(rule.APIGroups) == 1 && rule.APIGroups[0] == "example.com"
			}
			if !found {
				return fmt.Errorf("%s has %d rules, none for widgets", name, len(r.Rules))
			}
		}
		return nil
	})
}
