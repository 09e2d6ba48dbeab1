package authz

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/informers"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"
)

// bySubject is the index of bindings by the subjects they name.
const bySubject = "rbac.skiff.dev/subject"

// RBAC is Kubernetes' RBAC authorizer over informer caches: a request is
// allowed when a rule of a role bound to the user (or one of its groups)
// allows it; otherwise it has no opinion, which the server's chain turns
// into 403. Bindings are indexed by subject, so a request reads only the
// bindings that name its user and groups, never a scan of the store.
type RBAC struct {
	roles        rbaclisters.RoleLister
	clusterRoles rbaclisters.ClusterRoleLister
	rbs, crbs    cache.Indexer
	synced       []cache.InformerSynced
}

// NewRBAC builds the authorizer over the factory's RBAC informers (and
// adds its subject indexes to them). Start the factory and wait for
// HasSynced before asking it.
func NewRBAC(f informers.SharedInformerFactory) (*RBAC, error) {
	v1 := f.Rbac().V1()
	rbInf, crbInf := v1.RoleBindings().Informer(), v1.ClusterRoleBindings().Informer()
	if err := rbInf.AddIndexers(cache.Indexers{bySubject: indexRoleBinding}); err != nil {
		return nil, fmt.Errorf("rbac: role binding index: %w", err)
	}
	if err := crbInf.AddIndexers(cache.Indexers{bySubject: indexClusterRoleBinding}); err != nil {
		return nil, fmt.Errorf("rbac: cluster role binding index: %w", err)
	}
	r := &RBAC{roles: v1.Roles().Lister(), clusterRoles: v1.ClusterRoles().Lister(),
		rbs: rbInf.GetIndexer(), crbs: crbInf.GetIndexer()}
	r.synced = []cache.InformerSynced{rbInf.HasSynced, crbInf.HasSynced,
		v1.Roles().Informer().HasSynced, v1.ClusterRoles().Informer().HasSynced}
	return r, nil
}

// HasSynced reports whether every cache has its first list.
func (r *RBAC) HasSynced() bool {
	for _, s := range r.synced {
		if !s() {
			return false
		}
	}
	return true
}

func indexRoleBinding(obj any) ([]string, error) {
	rb, ok := obj.(*rbacv1.RoleBinding)
	if !ok {
		return nil, nil
	}
	keys := make([]string, 0, len(rb.Subjects))
	for _, s := range rb.Subjects {
		if k := subjectKey(s, rb.Namespace); k != "" {
			keys = append(keys, rb.Namespace+"|"+k)
		}
	}
	return keys, nil
}

func indexClusterRoleBinding(obj any) ([]string, error) {
	crb, ok := obj.(*rbacv1.ClusterRoleBinding)
	if !ok {
		return nil, nil
	}
	keys := make([]string, 0, len(crb.Subjects))
	for _, s := range crb.Subjects {
		if k := subjectKey(s, ""); k != "" {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// Authorize allows the request when a bound rule allows it.
func (r *RBAC) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	allowed := false
	r.VisitRules(a.GetUser(), a.GetNamespace(), func(rule *rbacv1.PolicyRule, _ error) bool {
		if rule != nil && RuleAllows(a, rule) {
			allowed = true
			return false
		}
		return true
	})
	if allowed {
		return authorizer.DecisionAllow, "", nil
	}
	return authorizer.DecisionNoOpinion, "", nil
}

// VisitRules calls visit with every rule that applies to u in namespace ns
// (the cluster-wide ones, then the namespace's when ns is set), or with an
// error for a binding whose role is missing; visit returns false to stop.
func (r *RBAC) VisitRules(u user.Info, ns string, visit func(rule *rbacv1.PolicyRule, err error) bool) {
	if u == nil {
		return
	}
	keys := userKeys(u)
	seen := map[string]bool{}
	for _, k := range keys {
		objs, _ := r.crbs.ByIndex(bySubject, k)
		for _, o := range objs {
			crb := o.(*rbacv1.ClusterRoleBinding)
			if seen[crb.Name] || !bindingApplies(u, crb.Subjects, "") {
				continue
			}
			seen[crb.Name] = true
			rules, err := r.RoleRefRules(crb.RoleRef, "")
			if err != nil && !visit(nil, fmt.Errorf("clusterrolebinding %q: %w", crb.Name, err)) {
				return
			}
			for i := range rules {
				if !visit(&rules[i], nil) {
					return
				}
			}
		}
	}
	if ns == "" {
		return
	}
	clear(seen)
	for _, k := range keys {
		objs, _ := r.rbs.ByIndex(bySubject, ns+"|"+k)
		for _, o := range objs {
			rb := o.(*rbacv1.RoleBinding)
			if seen[rb.Name] || !bindingApplies(u, rb.Subjects, rb.Namespace) {
				continue
			}
			seen[rb.Name] = true
			rules, err := r.RoleRefRules(rb.RoleRef, rb.Namespace)
			if err != nil && !visit(nil, fmt.Errorf("rolebinding %q in namespace %q: %w", rb.Name, rb.Namespace, err)) {
				return
			}
			for i := range rules {
				if !visit(&rules[i], nil) {
					return
				}
			}
		}
	}
}

func bindingApplies(u user.Info, subjects []rbacv1.Subject, ns string) bool {
	for _, s := range subjects {
		if AppliesTo(u, s, ns) {
			return true
		}
	}
	return false
}

// RoleRefRules are the rules a binding's roleRef grants: a Role in the
// binding's namespace, or a ClusterRole. The slices are the cache's: do
// not modify them.
func (r *RBAC) RoleRefRules(ref rbacv1.RoleRef, ns string) ([]rbacv1.PolicyRule, error) {
	switch ref.Kind {
	case "Role":
		role, err := r.roles.Roles(ns).Get(ref.Name)
		if err != nil {
			return nil, err
		}
		return role.Rules, nil
	case "ClusterRole":
		role, err := r.clusterRoles.Get(ref.Name)
		if err != nil {
			return nil, err
		}
		return role.Rules, nil
	}
	return nil, fmt.Errorf("unsupported role reference kind: %q", ref.Kind)
}

// RulesFor lists the rules u holds in ns (cluster-wide ones included), and
// the errors met on the way (bindings to missing roles), as Kubernetes'
// RuleResolver does for escalation checks and SelfSubjectRulesReview.
func (r *RBAC) RulesFor(u user.Info, ns string) ([]rbacv1.PolicyRule, []error) {
	var rules []rbacv1.PolicyRule
	var errs []error
	r.VisitRules(u, ns, func(rule *rbacv1.PolicyRule, err error) bool {
		if err != nil {
			errs = append(errs, err)
		} else {
			rules = append(rules, *rule)
		}
		return true
	})
	return rules, errs
}

// ClusterRoles lists the cached ClusterRoles, for the aggregation
// controller's selectors.
func (r *RBAC) ClusterRoles() rbaclisters.ClusterRoleLister { return r.clusterRoles }
