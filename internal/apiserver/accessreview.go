package apiserver

import (
	"errors"
	"net/http"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/skiffhq/skiff/internal/authz/bootstrap"
	nodeauthz "github.com/skiffhq/skiff/internal/authz/node"
)

// accessReviewGroup serves authorization.k8s.io/v1: the access reviews
// (SelfSubjectAccessReview, SubjectAccessReview, LocalSubjectAccessReview)
// and SelfSubjectRulesReview, which `kubectl auth can-i` (and --list)
// sends. They are create-only and never stored, as in Kubernetes.
func (s *Server) accessReviewGroup() APIGroup {
	res := func(name, kind string, namespaced bool) metav1.APIResource {
		return metav1.APIResource{Name: name, Kind: kind, Namespaced: namespaced, Verbs: metav1.Verbs{"create"}}
	}
	return APIGroup{Name: authorizationv1.GroupName, Versions: []APIGroupVersion{{Version: "v1",
		Resources: []metav1.APIResource{
			res("localsubjectaccessreviews", "LocalSubjectAccessReview", true),
			res("selfsubjectaccessreviews", "SelfSubjectAccessReview", false),
			res("selfsubjectrulesreviews", "SelfSubjectRulesReview", false),
			res("subjectaccessreviews", "SubjectAccessReview", false),
		},
		Serve: func(r *http.Request, path []string) (runtime.Object, error) {
			return nil, apierrors.NewMethodNotSupported(schema.GroupResource{Group: authorizationv1.GroupName, Resource: path[len(path)-1]}, r.Method)
		},
		Create: s.createAccessReview,
	}}}
}

func (s *Server) createAccessReview(w http.ResponseWriter, r *http.Request, path []string) (runtime.Object, error) {
	gv := authorizationv1.SchemeGroupVersion
	caller, _ := UserFrom(r.Context())
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	switch {
	case len(path) == 1 && path[0] == "selfsubjectaccessreviews":
		obj, err := s.decodeBody(w, r, gv.WithKind("SelfSubjectAccessReview"), body)
		if err != nil {
			return nil, err
		}
		review := obj.(*authorizationv1.SelfSubjectAccessReview)
		a, err := reviewAttributes(caller, review.Spec.ResourceAttributes, review.Spec.NonResourceAttributes)
		if err != nil {
			return nil, badReview("SelfSubjectAccessReview", "spec", err.Error())
		}
		review.Status = s.reviewStatus(r, a)
		return review, nil
	case len(path) == 1 && path[0] == "subjectaccessreviews",
		len(path) == 3 && path[0] == "namespaces" && path[2] == "localsubjectaccessreviews":
		kind := "SubjectAccessReview"
		if len(path) == 3 {
			kind = "LocalSubjectAccessReview"
		}
		obj, err := s.decodeBody(w, r, gv.WithKind(kind), body)
		if err != nil {
			return nil, err
		}
		var spec *authorizationv1.SubjectAccessReviewSpec
		var status *authorizationv1.SubjectAccessReviewStatus
		switch o := obj.(type) {
		case *authorizationv1.SubjectAccessReview:
			spec, status = &o.Spec, &o.Status
		case *authorizationv1.LocalSubjectAccessReview:
			spec, status = &o.Spec, &o.Status
			if spec.ResourceAttributes == nil {
				return nil, badReview(kind, "spec.resourceAttributes", "disallowed on this kind of request")
			}
			if spec.ResourceAttributes.Namespace == "" {
				spec.ResourceAttributes.Namespace = path[1]
			}
			if spec.ResourceAttributes.Namespace != path[1] || o.Namespace != "" && o.Namespace != path[1] {
				return nil, apierrors.NewBadRequest("spec.resourceAttributes.namespace must match namespace: " + path[1])
			}
			o.Namespace = path[1]
		}
		if spec.User == "" && len(spec.Groups) == 0 {
			return nil, badReview(kind, "spec.user", "at least one of user or group must be specified")
		}
		extra := map[string][]string{}
		for k, v := range spec.Extra {
			extra[k] = v
		}
		subject := &user.DefaultInfo{Name: spec.User, UID: spec.UID, Groups: spec.Groups, Extra: extra}
		a, err := reviewAttributes(subject, spec.ResourceAttributes, spec.NonResourceAttributes)
		if err != nil {
			return nil, badReview(kind, "spec", err.Error())
		}
		*status = s.reviewStatus(r, a)
		return obj, nil
	case len(path) == 1 && path[0] == "selfsubjectrulesreviews":
		obj, err := s.decodeBody(w, r, gv.WithKind("SelfSubjectRulesReview"), body)
		if err != nil {
			return nil, err
		}
		review := obj.(*authorizationv1.SelfSubjectRulesReview)
		if review.Spec.Namespace == "" {
			return nil, badReview("SelfSubjectRulesReview", "spec.namespace", "no namespace on request")
		}
		review.Status = s.rulesReview(caller, review.Spec.Namespace)
		return review, nil
	}
	return nil, notFoundPath(r.URL.Path)
}

func badReview(kind, field, msg string) error {
	return apierrors.NewBadRequest(kind + " " + field + ": " + msg)
}

// reviewAttributes are a review's attributes for u: exactly one of the
// resource and non-resource attributes must be given.
func reviewAttributes(u user.Info, res *authorizationv1.ResourceAttributes, nonRes *authorizationv1.NonResourceAttributes) (*authorizer.AttributesRecord, error) {
	switch {
	case res != nil && nonRes != nil:
		return nil, errors.New("cannot set both resourceAttributes and nonResourceAttributes")
	case res != nil:
		return &authorizer.AttributesRecord{User: u, Verb: res.Verb, Namespace: res.Namespace, APIGroup: res.Group,
			APIVersion: res.Version, Resource: res.Resource, Subresource: res.Subresource, Name: res.Name, ResourceRequest: true}, nil
	case nonRes != nil:
		return &authorizer.AttributesRecord{User: u, Verb: nonRes.Verb, Path: nonRes.Path}, nil
	}
	return nil, errors.New("exactly one of nonResourceAttributes or resourceAttributes must be specified")
}

func (s *Server) reviewStatus(r *http.Request, a *authorizer.AttributesRecord) authorizationv1.SubjectAccessReviewStatus {
	ok, reason, err := s.decide(r.Context(), a)
	st := authorizationv1.SubjectAccessReviewStatus{Allowed: ok, Reason: reason}
	if err != nil {
		st.EvaluationError = err.Error()
	}
	return st
}

// rulesReview lists what u may do in ns, from its RBAC rules (and a
// node's fixed rules), as Kubernetes' SelfSubjectRulesReview does; the
// node authorizer's per-object grants cannot be listed, so a node's
// answer is incomplete, as in Kubernetes.
func (s *Server) rulesReview(u user.Info, ns string) authorizationv1.SubjectRulesReviewStatus {
	var st authorizationv1.SubjectRulesReviewStatus
	if s.cfg.DisableRBAC {
		st.ResourceRules = []authorizationv1.ResourceRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}}
		st.NonResourceRules = []authorizationv1.NonResourceRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}}
		return st
	}
	chain := s.authorizers()
	if chain == nil {
		st.Incomplete, st.EvaluationError = true, "the authorizer is not ready"
		return st
	}
	rules, errs := chain.rbac.RulesFor(u, ns)
	if _, ok := nodeauthz.NodeName(u); ok {
		rules = append(rules, bootstrap.NodeRules()...)
		st.Incomplete = true
	}
	for _, rule := range rules {
		if len(rule.NonResourceURLs) > 0 {
			st.NonResourceRules = append(st.NonResourceRules, authorizationv1.NonResourceRule{Verbs: rule.Verbs, NonResourceURLs: rule.NonResourceURLs})
			continue
		}
		st.ResourceRules = append(st.ResourceRules, resourceRule(rule))
	}
	if len(errs) > 0 {
		st.Incomplete, st.EvaluationError = true, errors.Join(errs...).Error()
	}
	return st
}

func resourceRule(r rbacv1.PolicyRule) authorizationv1.ResourceRule {
	return authorizationv1.ResourceRule{Verbs: r.Verbs, APIGroups: r.APIGroups, Resources: r.Resources, ResourceNames: r.ResourceNames}
}
