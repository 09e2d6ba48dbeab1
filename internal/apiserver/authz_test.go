package apiserver

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/component-helpers/auth/rbac/validation"

	"github.com/skiffhq/skiff/internal/testutil"
)

// startAuthzServer is a test server with the bootstrap policy and the
// authorizers running, and a client for any identity.
func startAuthzServer(t *testing.T) (*Server, kubernetes.Interface, func(u user.Info, impersonate ...rest.ImpersonationConfig) kubernetes.Interface) {
	t.Helper()
	s, admin := newTestServer(t, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.ensureRBACPolicy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.startAuthorizers(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stopAuthorizers)
	as := func(u user.Info, imp ...rest.ImpersonationConfig) kubernetes.Interface {
		cfg := &rest.Config{Host: "http://in-process", Transport: s.InProcessTransportAs(u), QPS: -1}
		if len(imp) > 0 {
			cfg.Impersonate = imp[0]
		}
		return kubernetes.NewForConfigOrDie(cfg)
	}
	return s, kubernetes.NewForConfigOrDie(admin), as
}

// TestAccessReviewsAndImpersonation: SubjectAccessReview and
// LocalSubjectAccessReview answer for any subject (service accounts by
// binding namespace too), SelfSubjectRulesReview lists the caller's rules,
// impersonating a service account brings its groups, and impersonating a
// group one does not hold is refused in Kubernetes' words.
func TestAccessReviewsAndImpersonation(t *testing.T) {
	_, admin, as := startAuthzServer(t)
	ctx := context.Background()
	if _, err := admin.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "robot-view"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:aggregate-to-view"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "robot"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sar := func(u string, groups []string, ns, verb, resource string) bool {
		t.Helper()
		r, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: u, Groups: groups,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: resource}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Status.Allowed
	}
	robot := "system:serviceaccount:default:robot"
	testutil.Eventually(t, 10*time.Second, func() error {
		if !sar(robot, nil, "default", "list", "pods") {
			return errString("robot may not list pods yet")
		}
		return nil
	})
	if sar(robot, nil, "kube-system", "list", "pods") || sar(robot, nil, "default", "delete", "pods") {
		t.Error("robot may do more than its binding grants")
	}
	if !sar("anyone", []string{"system:masters"}, "x", "delete", "nodes") {
		t.Error("system:masters refused")
	}
	lsar, err := admin.AuthorizationV1().LocalSubjectAccessReviews("default").Create(ctx, &authorizationv1.LocalSubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{User: robot,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "configmaps"}}}, metav1.CreateOptions{})
	if err != nil || !lsar.Status.Allowed {
		t.Errorf("local review: %v %+v", err, lsar)
	}
	if _, err := admin.AuthorizationV1().LocalSubjectAccessReviews("default").Create(ctx, &authorizationv1.LocalSubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{User: robot,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "other", Verb: "get", Resource: "configmaps"}}},
		metav1.CreateOptions{}); !apierrors.IsBadRequest(err) {
		t.Errorf("local review for another namespace: %v, want 400", err)
	}

	alice := &user.DefaultInfo{Name: "alice", Groups: []string{user.AllAuthenticated}}
	rules, err := as(alice).AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: "default"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rules.Status.ResourceRules {
		found = found || strings.Join(r.Resources, ",") == "selfsubjectaccessreviews,selfsubjectrulesreviews"
	}
	if !found || len(rules.Status.NonResourceRules) == 0 {
		t.Errorf("alice's rules: %+v", rules.Status)
	}

	// The admin impersonates the service account: it gets the account's
	// groups and rights.
	asRobot := as(AdminUser, rest.ImpersonationConfig{UserName: robot})
	if _, err := asRobot.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("admin as robot listing pods: %v", err)
	}
	_, err = asRobot.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `User "system:serviceaccount:default:robot" cannot list resource "secrets"`) {
		t.Errorf("admin as robot listing secrets: %v, want 403 as robot", err)
	}
	self, err := asRobot.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: "default", Verb: "watch", Resource: "pods"}}}, metav1.CreateOptions{})
	if err != nil || !self.Status.Allowed {
		t.Errorf("robot's self review: %v %+v", err, self)
	}
	// alice may impersonate the user bob (granted) but not the group
	// system:masters.
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "imp-bob"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"impersonate"}, APIGroups: []string{""}, Resources: []string{"users"}, ResourceNames: []string{"bob"}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "imp-bob"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "imp-bob"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		_, err := as(alice, rest.ImpersonationConfig{UserName: "bob"}).CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err == nil || !strings.Contains(err.Error(), `User "bob" cannot list`) {
			return errString("alice as bob: " + errText(err))
		}
		return nil
	})
	_, err = as(alice, rest.ImpersonationConfig{UserName: "bob", Groups: []string{"system:masters"}}).CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	if want := `groups "system:masters" is forbidden: User "alice" cannot impersonate resource "groups" in API group "" at the cluster scope`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("alice as bob in system:masters: %v, want %s", err, want)
	}
	// A header without a user is a bad request.
	_, err = as(alice, rest.ImpersonationConfig{Groups: []string{"g"}}).CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if !apierrors.IsBadRequest(err) {
		t.Errorf("group without user: %v, want 400", err)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestBootstrapPolicyReconciles: at start, a bootstrap role that lost a
// rule gets it back and keeps what a user added, a binding gets its
// subjects back, and autoupdate "false" leaves an object as the user left
// it.
func TestBootstrapPolicyReconciles(t *testing.T) {
	s, admin, _ := startAuthzServer(t)
	ctx := context.Background()
	crs := admin.RbacV1().ClusterRoles()
	basic, err := crs.Get(ctx, "system:basic-user", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mine := rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}}
	basic.Rules = []rbacv1.PolicyRule{mine}
	if _, err := crs.Update(ctx, basic, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	disc, err := crs.Get(ctx, "system:discovery", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	disc.Annotations["rbac.authorization.kubernetes.io/autoupdate"] = "false"
	disc.Rules = []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/version"}}}
	if _, err := crs.Update(ctx, disc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	crb, err := admin.RbacV1().ClusterRoleBindings().Get(ctx, "system:basic-user", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	crb.Subjects = nil
	if _, err := admin.RbacV1().ClusterRoleBindings().Update(ctx, crb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	if err := s.ensureRBACPolicy(ctx); err != nil { // as at the next start
		t.Fatal(err)
	}
	basic, _ = crs.Get(ctx, "system:basic-user", metav1.GetOptions{})
	want := []rbacv1.PolicyRule{mine,
		{Verbs: []string{"create"}, APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews", "selfsubjectrulesreviews"}},
		{Verbs: []string{"create"}, APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}}}
	if covered, missing := validation.Covers(basic.Rules, want); !covered || !reflect.DeepEqual(basic.Rules[0], mine) {
		t.Errorf("system:basic-user after reconcile: %+v (missing %+v), want the user's rule first and the bootstrap rules", basic.Rules, missing)
	}
	disc, _ = crs.Get(ctx, "system:discovery", metav1.GetOptions{})
	if len(disc.Rules) != 1 || len(disc.Rules[0].NonResourceURLs) != 1 {
		t.Errorf("system:discovery with autoupdate false: %+v, want the user's rules only", disc.Rules)
	}
	crb, _ = admin.RbacV1().ClusterRoleBindings().Get(ctx, "system:basic-user", metav1.GetOptions{})
	if len(crb.Subjects) != 1 || crb.Subjects[0].Name != user.AllAuthenticated {
		t.Errorf("system:basic-user binding after reconcile: %+v", crb.Subjects)
	}
}
