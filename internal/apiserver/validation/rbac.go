package validation

import (
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validatePolicyRules is ValidatePolicyRule for each rule: verbs always,
// and either resources with API groups or (cluster-wide only) non-resource
// URLs.
func validatePolicyRules(rules []rbacv1.PolicyRule, namespaced bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, r := range rules {
		rp := p.Index(i)
		if len(r.Verbs) == 0 {
			errs = append(errs, field.Required(rp.Child("verbs"), "verbs must contain at least one value"))
		}
		if len(r.NonResourceURLs) > 0 {
			if namespaced {
				errs = append(errs, field.Invalid(rp.Child("nonResourceURLs"), r.NonResourceURLs, "namespaced rules cannot apply to non-resource URLs"))
			}
			if len(r.APIGroups) > 0 || len(r.Resources) > 0 || len(r.ResourceNames) > 0 {
				errs = append(errs, field.Invalid(rp.Child("nonResourceURLs"), r.NonResourceURLs, "rules cannot apply to both regular resources and non-resource URLs"))
			}
			continue
		}
		if len(r.APIGroups) == 0 {
			errs = append(errs, field.Required(rp.Child("apiGroups"), "resource rules must supply at least one api group"))
		}
		if len(r.Resources) == 0 {
			errs = append(errs, field.Required(rp.Child("resources"), "resource rules must supply at least one resource"))
		}
	}
	return errs
}

func validateClusterRole(cr *rbacv1.ClusterRole) field.ErrorList {
	errs := validatePolicyRules(cr.Rules, false, field.NewPath("rules"))
	if ar := cr.AggregationRule; ar != nil {
		ap := field.NewPath("aggregationRule", "clusterRoleSelectors")
		if len(ar.ClusterRoleSelectors) == 0 {
			errs = append(errs, field.Required(ap, "at least one clusterRoleSelector required if aggregationRule is non-nil"))
		}
		for i := range ar.ClusterRoleSelectors {
			errs = append(errs, labelSelector(&ar.ClusterRoleSelectors[i], ap.Index(i))...)
		}
	}
	return errs
}

func roleRefOf(b *rbacv1.RoleBinding) *rbacv1.RoleRef {
	if b == nil {
		return nil
	}
	return &b.RoleRef
}

func clusterRoleRefOf(b *rbacv1.ClusterRoleBinding) *rbacv1.RoleRef {
	if b == nil {
		return nil
	}
	return &b.RoleRef
}

// validateRoleBinding checks a (Cluster)RoleBinding: a roleRef to a Role (for
// RoleBindings) or ClusterRole in the RBAC group, subjects of known kinds, and
// a roleRef that never changes.
func validateRoleBinding(ref *rbacv1.RoleRef, subjects []rbacv1.Subject, namespaced bool, oldRef *rbacv1.RoleRef) field.ErrorList {
	var errs field.ErrorList
	rp := field.NewPath("roleRef")
	if ref.APIGroup != rbacv1.GroupName {
		errs = append(errs, field.NotSupported(rp.Child("apiGroup"), ref.APIGroup, []string{rbacv1.GroupName}))
	}
	kinds := []string{"ClusterRole"}
	if namespaced {
		kinds = []string{"Role", "ClusterRole"}
	}
	errs = append(errs, optionalEnum(ref.Kind, rp.Child("kind"), kinds...)...)
	if ref.Kind == "" {
		errs = append(errs, field.NotSupported(rp.Child("kind"), ref.Kind, kinds))
	}
	errs = append(errs, requiredName(ref.Name, rp.Child("name"), pathSegment)...)
	for i, s := range subjects {
		sp := field.NewPath("subjects").Index(i)
		if s.Name == "" {
			errs = append(errs, field.Required(sp.Child("name"), ""))
		}
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			if s.Name != "" {
				errs = append(errs, dnsSubdomain(s.Name, sp.Child("name"))...)
			}
			if s.APIGroup != "" {
				errs = append(errs, field.NotSupported(sp.Child("apiGroup"), s.APIGroup, []string{""}))
			}
			if !namespaced && s.Namespace == "" {
				errs = append(errs, field.Required(sp.Child("namespace"), ""))
			}
		case rbacv1.UserKind, rbacv1.GroupKind:
			if s.APIGroup != rbacv1.GroupName {
				errs = append(errs, field.NotSupported(sp.Child("apiGroup"), s.APIGroup, []string{rbacv1.GroupName}))
			}
		default:
			errs = append(errs, field.NotSupported(sp.Child("kind"), s.Kind,
				[]string{rbacv1.ServiceAccountKind, rbacv1.UserKind, rbacv1.GroupKind}))
		}
	}
	if oldRef != nil && *oldRef != *ref {
		errs = append(errs, field.Invalid(rp, *ref, "cannot change roleRef"))
	}
	return errs
}
