package apiserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/component-helpers/auth/rbac/validation"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
	"github.com/skiffhq/skiff/internal/authz/bootstrap"
	nodeauthz "github.com/skiffhq/skiff/internal/authz/node"
)

// ensureRBACPolicy creates the bootstrap ClusterRoles and
// ClusterRoleBindings (package bootstrap) and the controllers' service
// accounts that are missing, and, as Kubernetes' reconciliation does, adds
// to an existing bootstrap role the rules it lacks (and to a binding the
// subjects), so a newer version's permissions arrive on upgrade. Nothing
// is removed or replaced: what a user added stays, and an object annotated
// rbac.authorization.kubernetes.io/autoupdate: "false" is left alone
// entirely. Aggregated roles' rules belong to the aggregation controller.
func (s *Server) ensureRBACPolicy(ctx context.Context) error {
	gv := rbacv1.SchemeGroupVersion
	crRes, _ := s.reg.Get(gv.WithResource("clusterroles"))
	crbRes, _ := s.reg.Get(gv.WithResource("clusterrolebindings"))
	saRes, _ := s.reg.Get(schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"})
	for _, cr := range bootstrap.ClusterRoles() {
		cr.SetGroupVersionKind(crRes.GVK())
		cur, err := s.createMissing(ctx, crRes, "", cr.Name, &cr)
		if err != nil {
			return fmt.Errorf("clusterrole %s: %w", cr.Name, err)
		}
		if have, ok := cur.(*rbacv1.ClusterRole); ok && autoUpdate(have) && have.AggregationRule == nil {
			if covered, missing := validation.Covers(have.Rules, cr.Rules); !covered {
				have.Rules = append(have.Rules, missing...)
				if err := s.reconcile(ctx, crRes, have); err != nil {
					return fmt.Errorf("clusterrole %s: %w", cr.Name, err)
				}
			}
		}
	}
	for _, crb := range bootstrap.ClusterRoleBindings() {
		crb.SetGroupVersionKind(crbRes.GVK())
		cur, err := s.createMissing(ctx, crbRes, "", crb.Name, &crb)
		if err != nil {
			return fmt.Errorf("clusterrolebinding %s: %w", crb.Name, err)
		}
		if have, ok := cur.(*rbacv1.ClusterRoleBinding); ok && autoUpdate(have) && have.RoleRef == crb.RoleRef {
			added := false
			for _, sub := range crb.Subjects {
				if !slices.Contains(have.Subjects, sub) {
					have.Subjects, added = append(have.Subjects, sub), true
				}
			}
			if added {
				if err := s.reconcile(ctx, crbRes, have); err != nil {
					return fmt.Errorf("clusterrolebinding %s: %w", crb.Name, err)
				}
			}
		}
		for _, sub := range crb.Subjects {
			if sub.Kind != rbacv1.ServiceAccountKind {
				continue
			}
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sub.Name, Namespace: sub.Namespace}}
			sa.SetGroupVersionKind(saRes.GVK())
			if _, err := s.createMissing(ctx, saRes, sub.Namespace, sub.Name, sa); err != nil {
				return fmt.Errorf("serviceaccount %s/%s: %w", sub.Namespace, sub.Name, err)
			}
		}
	}
	return nil
}

// createMissing creates obj unless it exists; it returns what exists
// (nil when it created it or another server just did).
func (s *Server) createMissing(ctx context.Context, res *resources.Resource, ns, name string, obj runtime.Object) (runtime.Object, error) {
	if cur, err := s.objs.get(ctx, res, ns, name); err == nil {
		return cur, nil
	} else if !apierrors.IsNotFound(err) {
		return nil, err
	}
	if _, err := s.createObject(ctx, res, obj, nil, ""); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	return nil, nil
}

func autoUpdate(obj metav1.Object) bool {
	return obj.GetAnnotations()[bootstrap.AutoUpdateAnnotation] != "false"
}

// reconcile writes a bootstrap object back at the revision it was read
// at; a conflict means another server (or a user) wrote it meanwhile, and
// the next start looks again.
func (s *Server) reconcile(ctx context.Context, res *resources.Resource, obj runtime.Object) error {
	m := mustMeta(obj)
	rev, err := parseRV(m.GetResourceVersion())
	if err != nil {
		return err
	}
	if _, err := s.objs.update(ctx, res, m.GetNamespace(), m.GetName(), obj, rev); err != nil && !apierrors.IsConflict(err) {
		return err
	}
	return nil
}

// admitRBAC is Kubernetes' escalation prevention for RBAC writes: a Role
// or ClusterRole may hold only rules its author holds (unless the author
// has the escalate verb on it), and a binding may grant only a role whose
// rules its author holds (unless the author has the bind verb on that
// role). A ClusterRole with an aggregationRule may be written only by who
// holds everything, as its rules are whatever it selects. system:masters
// and the server's own writes (no user: the bootstrap policy) pass.
func (s *Server) admitRBAC(ctx context.Context, obj runtime.Object) error {
	u, ok := UserFrom(ctx)
	if !ok || s.cfg.DisableRBAC || masters(u) {
		return nil
	}
	allowed := func(verb, resource, ns, name string) bool {
		ok, _, _ := s.decide(ctx, &authorizer.AttributesRecord{User: u, Verb: verb, Namespace: ns,
			APIGroup: rbacv1.GroupName, Resource: resource, Name: name, ResourceRequest: true})
		return ok
	}
	gr := func(resource string) schema.GroupResource {
		return schema.GroupResource{Group: rbacv1.GroupName, Resource: resource}
	}
	if node, ok := nodeauthz.NodeName(u); ok {
		return admitNode(node, obj)
	}
	switch o := obj.(type) {
	case *rbacv1.Role:
		if allowed("escalate", "roles", o.Namespace, o.Name) {
			return nil
		}
		return s.confirmNoEscalation(u, o.Namespace, o.Rules, gr("roles"), o.Name)
	case *rbacv1.ClusterRole:
		if allowed("escalate", "clusterroles", "", o.Name) {
			return nil
		}
		rules := o.Rules
		if o.AggregationRule != nil {
			rules = []rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}}
		}
		return s.confirmNoEscalation(u, "", rules, gr("clusterroles"), o.Name)
	case *rbacv1.RoleBinding:
		return s.confirmBind(u, o.Namespace, o.RoleRef, allowed, gr("rolebindings"), o.Name)
	case *rbacv1.ClusterRoleBinding:
		return s.confirmBind(u, "", o.RoleRef, allowed, gr("clusterrolebindings"), o.Name)
	}
	return nil
}

func (s *Server) confirmBind(u user.Info, ns string, ref rbacv1.RoleRef, allowed func(verb, resource, ns, name string) bool, gr schema.GroupResource, name string) error {
	refResource := "clusterroles"
	if ref.Kind == "Role" {
		refResource = "roles"
	}
	if allowed("bind", refResource, ns, ref.Name) {
		return nil
	}
	chain := s.authorizers()
	if chain == nil {
		return apierrors.NewForbidden(gr, name, errors.New("the authorizer is not ready"))
	}
	rules, err := chain.rbac.RoleRefRules(ref, ns)
	if err != nil {
		return apierrors.NewForbidden(gr, name, fmt.Errorf("%w", err))
	}
	return s.confirmNoEscalation(u, ns, rules, gr, name)
}

// confirmNoEscalation refuses rules the user does not hold in ns, in
// Kubernetes' words.
func (s *Server) confirmNoEscalation(u user.Info, ns string, rules []rbacv1.PolicyRule, gr schema.GroupResource, name string) error {
	chain := s.authorizers()
	if chain == nil {
		return apierrors.NewForbidden(gr, name, errors.New("the authorizer is not ready"))
	}
	owned, errs := chain.rbac.RulesFor(u, ns)
	covered, missing := validation.Covers(owned, rules)
	if covered {
		return nil
	}
	desc := make([]string, 0, len(missing))
	for _, m := range missing {
		desc = append(desc, compactRule(m))
	}
	sort.Strings(desc)
	msg := fmt.Sprintf("user %q (groups=%q) is attempting to grant RBAC permissions not currently held:\n%s",
		u.GetName(), u.GetGroups(), strings.Join(desc, "\n"))
	if len(errs) > 0 {
		msg += fmt.Sprintf("; resolution errors: %v", errs)
	}
	return apierrors.NewForbidden(gr, name, errors.New(msg))
}

// admitNode is the part of Kubernetes' NodeRestriction admission that
// needs the object: a node creates or updates only its own Node, and
// creates only pods bound to itself (mirror pods) and only its own Lease.
func admitNode(node string, obj runtime.Object) error {
	switch o := obj.(type) {
	case *corev1.Node:
		if o.Name != node {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, o.Name,
				fmt.Errorf("node %q is not allowed to modify node %q", node, o.Name))
		}
	case *coordinationv1.Lease:
		if o.Namespace != corev1.NamespaceNodeLease || o.Name != node {
			return apierrors.NewForbidden(schema.GroupResource{Group: coordinationv1.GroupName, Resource: "leases"}, o.Name,
				fmt.Errorf("node %q can only access its own lease in namespace %s", node, corev1.NamespaceNodeLease))
		}
	case *corev1.Pod:
		if o.Spec.NodeName != node {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, o.Name,
				fmt.Errorf("node %q can only create pods with spec.nodeName set to itself", node))
		}
	}
	return nil
}

// compactRule prints a rule as Kubernetes' rbacv1helpers.CompactString.
func compactRule(r rbacv1.PolicyRule) string {
	var parts []string
	add := func(field string, vs []string) {
		if len(vs) == 0 {
			return
		}
		q := make([]string, len(vs))
		for i, v := range vs {
			q[i] = fmt.Sprintf("%q", v)
		}
		parts = append(parts, field+":["+strings.Join(q, ", ")+"]")
	}
	add("APIGroups", r.APIGroups)
	add("Resources", r.Resources)
	add("ResourceNames", r.ResourceNames)
	add("NonResourceURLs", r.NonResourceURLs)
	add("Verbs", r.Verbs)
	return "{" + strings.Join(parts, ", ") + "}"
}
