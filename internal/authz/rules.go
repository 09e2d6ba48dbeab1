package authz

import (
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// RuleAllows reports whether one policy rule allows the request, as
// Kubernetes' rbac.RuleAllows: resource requests match verbs, API groups,
// resources (with "resource/subresource", "*" and "*/subresource") and
// resourceNames; non-resource requests match verbs and nonResourceURLs
// (exact, "*", or a prefix ending in "*").
func RuleAllows(a authorizer.Attributes, rule *rbacv1.PolicyRule) bool {
	if a.IsResourceRequest() {
		combined := a.GetResource()
		if a.GetSubresource() != "" {
			combined += "/" + a.GetSubresource()
		}
		return VerbMatches(rule, a.GetVerb()) &&
			APIGroupMatches(rule, a.GetAPIGroup()) &&
			ResourceMatches(rule, combined, a.GetSubresource()) &&
			ResourceNameMatches(rule, a.GetName())
	}
	return VerbMatches(rule, a.GetVerb()) && NonResourceURLMatches(rule, a.GetPath())
}

// RulesAllow reports whether any of the rules allows the request.
func RulesAllow(a authorizer.Attributes, rules ...rbacv1.PolicyRule) bool {
	for i := range rules {
		if RuleAllows(a, &rules[i]) {
			return true
		}
	}
	return false
}

// VerbMatches: the rule names the verb, or "*".
func VerbMatches(rule *rbacv1.PolicyRule, verb string) bool {
	for _, v := range rule.Verbs {
		if v == rbacv1.VerbAll || v == verb {
			return true
		}
	}
	return false
}

// APIGroupMatches: the rule names the group ("" is the core group), or "*".
func APIGroupMatches(rule *rbacv1.PolicyRule, group string) bool {
	for _, g := range rule.APIGroups {
		if g == rbacv1.APIGroupAll || g == group {
			return true
		}
	}
	return false
}

// ResourceMatches: the rule names "*", the resource with its subresource
// ("pods/log"; a bare "pods" does not cover "pods/log"), or "*/sub" for
// that subresource of every resource.
func ResourceMatches(rule *rbacv1.PolicyRule, combined, subresource string) bool {
	for _, r := range rule.Resources {
		switch {
		case r == rbacv1.ResourceAll, r == combined:
			return true
		case subresource == "":
			continue
		case len(r) == len(subresource)+2 && strings.HasPrefix(r, "*/") && strings.HasSuffix(r, subresource):
			return true
		}
	}
	return false
}

// ResourceNameMatches: the rule lists no names (any), or the request's.
// A request without a name (list, create) matches only a rule without
// names, as in Kubernetes.
func ResourceNameMatches(rule *rbacv1.PolicyRule, name string) bool {
	if len(rule.ResourceNames) == 0 {
		return true
	}
	for _, n := range rule.ResourceNames {
		if n == name {
			return true
		}
	}
	return false
}

// NonResourceURLMatches: the rule names the path, "*", or a prefix of it
// ending in "*" ("/healthz/*").
func NonResourceURLMatches(rule *rbacv1.PolicyRule, path string) bool {
	for _, u := range rule.NonResourceURLs {
		switch {
		case u == rbacv1.NonResourceAll, u == path:
			return true
		case strings.HasSuffix(u, "*") && strings.HasPrefix(path, strings.TrimRight(u, "*")):
			return true
		}
	}
	return false
}

// AppliesTo reports whether a binding's subject is the user: a User by
// name, a Group the user is in, or a ServiceAccount by its user name
// (system:serviceaccount:<ns>:<name>; a subject without a namespace takes
// the binding's).
func AppliesTo(u user.Info, s rbacv1.Subject, bindingNamespace string) bool {
	switch s.Kind {
	case rbacv1.UserKind:
		return u.GetName() == s.Name
	case rbacv1.GroupKind:
		for _, g := range u.GetGroups() {
			if g == s.Name {
				return true
			}
		}
		return false
	case rbacv1.ServiceAccountKind:
		ns := bindingNamespace
		if s.Namespace != "" {
			ns = s.Namespace
		}
		return ns != "" && serviceaccount.MatchesUsername(ns, s.Name, u.GetName())
	}
	return false
}

// subjectKeys are the index keys a binding's subject is found under; the
// keys of a user are the same shapes (userKeys), so a request looks up
// only the bindings that name it.
func subjectKey(s rbacv1.Subject, bindingNamespace string) string {
	switch s.Kind {
	case rbacv1.UserKind:
		return "user:" + s.Name
	case rbacv1.GroupKind:
		return "group:" + s.Name
	case rbacv1.ServiceAccountKind:
		ns := bindingNamespace
		if s.Namespace != "" {
			ns = s.Namespace
		}
		if ns == "" {
			return ""
		}
		return "user:" + serviceaccount.MakeUsername(ns, s.Name)
	}
	return ""
}

func userKeys(u user.Info) []string {
	keys := make([]string, 0, 1+len(u.GetGroups()))
	keys = append(keys, "user:"+u.GetName())
	for _, g := range u.GetGroups() {
		keys = append(keys, "group:"+g)
	}
	return keys
}
