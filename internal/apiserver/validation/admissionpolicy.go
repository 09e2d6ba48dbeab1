package validation

import (
	"fmt"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"
)

// defaultAdmissionPolicy applies admissionregistration/v1's defaults
// (Kubernetes' SetDefaults_ValidatingAdmissionPolicy and friends): the
// matcher reads a nil selector as "nothing", so they matter.
func defaultAdmissionPolicy(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
	if p.Spec.FailurePolicy == nil {
		f := admissionregistrationv1.Fail
		p.Spec.FailurePolicy = &f
	}
	defaultMatchResources(p.Spec.MatchConstraints)
}

func defaultAdmissionPolicyBinding(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	defaultMatchResources(b.Spec.MatchResources)
}

func defaultMatchResources(m *admissionregistrationv1.MatchResources) {
	if m == nil {
		return
	}
	if m.MatchPolicy == nil {
		e := admissionregistrationv1.Equivalent
		m.MatchPolicy = &e
	}
	if m.NamespaceSelector == nil {
		m.NamespaceSelector = &metav1.LabelSelector{}
	}
	if m.ObjectSelector == nil {
		m.ObjectSelector = &metav1.LabelSelector{}
	}
	for _, rules := range [][]admissionregistrationv1.NamedRuleWithOperations{m.ResourceRules, m.ExcludeResourceRules} {
		for i := range rules {
			if rules[i].Scope == nil {
				s := admissionregistrationv1.AllScopes
				rules[i].Scope = &s
			}
		}
	}
}

// validateAdmissionPolicy is Kubernetes' ValidateValidatingAdmissionPolicy
// for what matters here: a paramKind that names a kind, match constraints
// with resource rules, at least one validation or audit annotation, valid
// failure policy and reasons, and every CEL expression compiling in the
// environment the admission plugin evaluates it in. A compile error is a
// 422 on the policy, as in Kubernetes; new expressions compile against the
// newest library set, stored ones (update) against what storage accepts.
func validateAdmissionPolicy(p, old *admissionregistrationv1.ValidatingAdmissionPolicy) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	envType := environment.NewExpressions
	if old != nil {
		envType = environment.StoredExpressions
	}
	if pk := p.Spec.ParamKind; pk != nil {
		pp := spec.Child("paramKind")
		if pk.APIVersion == "" {
			errs = append(errs, field.Required(pp.Child("apiVersion"), ""))
		} else if gv, err := schema.ParseGroupVersion(pk.APIVersion); err != nil || gv.Version == "" {
			errs = append(errs, field.Invalid(pp.Child("apiVersion"), pk.APIVersion, "must be a valid group version"))
		}
		if pk.Kind == "" {
			errs = append(errs, field.Required(pp.Child("kind"), ""))
		}
	}
	mc := spec.Child("matchConstraints")
	if p.Spec.MatchConstraints == nil {
		errs = append(errs, field.Required(mc, ""))
	} else {
		if len(p.Spec.MatchConstraints.ResourceRules) == 0 {
			errs = append(errs, field.Required(mc.Child("resourceRules"), ""))
		}
		errs = append(errs, validateMatchResources(p.Spec.MatchConstraints, mc)...)
	}
	if len(p.Spec.Validations) == 0 && len(p.Spec.AuditAnnotations) == 0 {
		errs = append(errs, field.Required(spec.Child("validations"), "validations or auditAnnotations must contain at least one item"))
	}
	if f := p.Spec.FailurePolicy; f != nil && *f != admissionregistrationv1.Fail && *f != admissionregistrationv1.Ignore {
		errs = append(errs, field.NotSupported(spec.Child("failurePolicy"), *f, []string{string(admissionregistrationv1.Fail), string(admissionregistrationv1.Ignore)}))
	}

	compiler, err := plugincel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion(), true))
	if err != nil {
		return append(errs, field.InternalError(spec, fmt.Errorf("CEL environment: %w", err)))
	}
	opts := plugincel.OptionalVariableDeclarations{HasParams: p.Spec.ParamKind != nil, HasAuthorizer: true, StrictCost: true}
	msgOpts := plugincel.OptionalVariableDeclarations{HasParams: p.Spec.ParamKind != nil, StrictCost: true}
	names := sets.New[string]()
	for i, v := range p.Spec.Variables {
		vp := spec.Child("variables").Index(i)
		if v.Name == "" {
			errs = append(errs, field.Required(vp.Child("name"), "name is not specified"))
		} else if names.Has(v.Name) {
			errs = append(errs, field.Duplicate(vp.Child("name"), v.Name))
		}
		names.Insert(v.Name)
		if v.Expression == "" {
			errs = append(errs, field.Required(vp.Child("expression"), "expression is not specified"))
			continue
		}
		r := compiler.CompileAndStoreVariable(&validating.Variable{Name: v.Name, Expression: v.Expression}, opts, envType)
		errs = append(errs, celError(vp.Child("expression"), v.Expression, r.Error)...)
	}
	for i, c := range p.Spec.MatchConditions {
		cp := spec.Child("matchConditions").Index(i)
		if c.Name == "" {
			errs = append(errs, field.Required(cp.Child("name"), ""))
		}
		if c.Expression == "" {
			errs = append(errs, field.Required(cp.Child("expression"), ""))
			continue
		}
		r := compiler.CompileCELExpression((*matchconditions.MatchCondition)(&p.Spec.MatchConditions[i]), opts, envType)
		errs = append(errs, celError(cp.Child("expression"), c.Expression, r.Error)...)
	}
	reasons := []string{string(metav1.StatusReasonUnauthorized), string(metav1.StatusReasonForbidden),
		string(metav1.StatusReasonInvalid), string(metav1.StatusReasonRequestEntityTooLarge)}
	for i, v := range p.Spec.Validations {
		vp := spec.Child("validations").Index(i)
		if strings.TrimSpace(v.Expression) == "" {
			errs = append(errs, field.Required(vp.Child("expression"), "expression is not specified"))
		} else {
			r := compiler.CompileCELExpression(&validating.ValidationCondition{Expression: v.Expression}, opts, envType)
			errs = append(errs, celError(vp.Child("expression"), v.Expression, r.Error)...)
		}
		if strings.Contains(v.Message, "\n") {
			errs = append(errs, field.Invalid(vp.Child("message"), v.Message, "message must not contain line breaks"))
		}
		if v.MessageExpression != "" {
			r := compiler.CompileCELExpression(&validating.MessageExpressionCondition{MessageExpression: v.MessageExpression}, msgOpts, envType)
			errs = append(errs, celError(vp.Child("messageExpression"), v.MessageExpression, r.Error)...)
		}
		if v.Reason != nil && !sets.New(reasons...).Has(string(*v.Reason)) {
			errs = append(errs, field.NotSupported(vp.Child("reason"), *v.Reason, reasons))
		}
	}
	for i, a := range p.Spec.AuditAnnotations {
		ap := spec.Child("auditAnnotations").Index(i)
		if a.Key == "" {
			errs = append(errs, field.Required(ap.Child("key"), ""))
		}
		if a.ValueExpression == "" {
			errs = append(errs, field.Required(ap.Child("valueExpression"), "valueExpression is not specified"))
			continue
		}
		r := compiler.CompileCELExpression(&validating.AuditAnnotationCondition{Key: a.Key, ValueExpression: a.ValueExpression}, opts, envType)
		errs = append(errs, celError(ap.Child("valueExpression"), a.ValueExpression, r.Error)...)
	}
	return errs
}

// celError turns a compile error into the field error Kubernetes reports:
// Invalid with the compiler's detail, Required for an empty expression.
func celError(p *field.Path, expr string, err *apiservercel.Error) field.ErrorList {
	if err == nil {
		return nil
	}
	ce := err
	switch ce.Type {
	case apiservercel.ErrorTypeRequired:
		return field.ErrorList{field.Required(p, ce.Detail)}
	case apiservercel.ErrorTypeInvalid:
		return field.ErrorList{field.Invalid(p, expr, ce.Detail)}
	default:
		return field.ErrorList{field.InternalError(p, ce)}
	}
}

func validateMatchResources(m *admissionregistrationv1.MatchResources, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m.MatchPolicy != nil && *m.MatchPolicy != admissionregistrationv1.Exact && *m.MatchPolicy != admissionregistrationv1.Equivalent {
		errs = append(errs, field.NotSupported(p.Child("matchPolicy"), *m.MatchPolicy, []string{string(admissionregistrationv1.Equivalent), string(admissionregistrationv1.Exact)}))
	}
	opts := metav1validation.LabelSelectorValidationOptions{}
	if m.NamespaceSelector != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(m.NamespaceSelector, opts, p.Child("namespaceSelector"))...)
	}
	if m.ObjectSelector != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(m.ObjectSelector, opts, p.Child("objectSelector"))...)
	}
	for _, set := range []struct {
		name  string
		rules []admissionregistrationv1.NamedRuleWithOperations
	}{{"resourceRules", m.ResourceRules}, {"excludeResourceRules", m.ExcludeResourceRules}} {
		for i, r := range set.rules {
			errs = append(errs, validateRule(&r, p.Child(set.name).Index(i))...)
		}
	}
	return errs
}

// validateRule is Kubernetes' rule check: each list non-empty, "*" alone,
// known operations and scope.
func validateRule(r *admissionregistrationv1.NamedRuleWithOperations, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	lists := []struct {
		name string
		vals []string
	}{{"apiGroups", r.APIGroups}, {"apiVersions", r.APIVersions}, {"resources", r.Resources}}
	for _, l := range lists {
		if len(l.vals) == 0 {
			errs = append(errs, field.Required(p.Child(l.name), ""))
		}
		if len(l.vals) > 1 && sets.New(l.vals...).Has("*") {
			errs = append(errs, field.Invalid(p.Child(l.name), l.vals, "if '*' is present, must not specify other "+l.name))
		}
	}
	if len(r.Operations) == 0 {
		errs = append(errs, field.Required(p.Child("operations"), ""))
	}
	ops := []string{"*", string(admissionregistrationv1.Create), string(admissionregistrationv1.Update),
		string(admissionregistrationv1.Delete), string(admissionregistrationv1.Connect)}
	for i, op := range r.Operations {
		if !sets.New(ops...).Has(string(op)) {
			errs = append(errs, field.NotSupported(p.Child("operations").Index(i), op, ops))
		}
	}
	if len(r.Operations) > 1 && sets.New(r.Operations...).Has(admissionregistrationv1.OperationAll) {
		errs = append(errs, field.Invalid(p.Child("operations"), r.Operations, "if '*' is present, must not specify other operations"))
	}
	if r.Scope != nil {
		scopes := []string{string(admissionregistrationv1.AllScopes), string(admissionregistrationv1.ClusterScope), string(admissionregistrationv1.NamespacedScope)}
		if !sets.New(scopes...).Has(string(*r.Scope)) {
			errs = append(errs, field.NotSupported(p.Child("scope"), *r.Scope, scopes))
		}
	}
	return errs
}

// validateAdmissionPolicyBinding is Kubernetes' binding check: a policy
// name, validationActions from Deny/Warn/Audit without repeats and not
// both Deny and Warn, a paramRef naming by name or selector (not both)
// with its parameterNotFoundAction, and valid matchResources.
func validateAdmissionPolicyBinding(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if b.Spec.PolicyName == "" {
		errs = append(errs, field.Required(spec.Child("policyName"), ""))
	}
	ap := spec.Child("validationActions")
	if len(b.Spec.ValidationActions) == 0 {
		errs = append(errs, field.Required(ap, ""))
	}
	seen := sets.New[admissionregistrationv1.ValidationAction]()
	actions := []string{string(admissionregistrationv1.Deny), string(admissionregistrationv1.Warn), string(admissionregistrationv1.Audit)}
	for i, a := range b.Spec.ValidationActions {
		switch {
		case seen.Has(a):
			errs = append(errs, field.Duplicate(ap.Index(i), a))
		case !sets.New(actions...).Has(string(a)):
			errs = append(errs, field.NotSupported(ap.Index(i), a, actions))
		}
		seen.Insert(a)
	}
	if seen.Has(admissionregistrationv1.Deny) && seen.Has(admissionregistrationv1.Warn) {
		errs = append(errs, field.Invalid(ap, b.Spec.ValidationActions, "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)"))
	}
	if pr := b.Spec.ParamRef; pr != nil {
		pp := spec.Child("paramRef")
		if pr.Name != "" && pr.Selector != nil {
			errs = append(errs, field.Forbidden(pp.Child("name"), "name and selector are mutually exclusive"))
		}
		if pr.Name == "" && pr.Selector == nil {
			errs = append(errs, field.Required(pp, "one of name or selector must be specified"))
		}
		if pr.Selector != nil {
			errs = append(errs, metav1validation.ValidateLabelSelector(pr.Selector, metav1validation.LabelSelectorValidationOptions{}, pp.Child("selector"))...)
		}
		npa := []string{string(admissionregistrationv1.DenyAction), string(admissionregistrationv1.AllowAction)}
		if pr.ParameterNotFoundAction == nil {
			errs = append(errs, field.Required(pp.Child("parameterNotFoundAction"), ""))
		} else if !sets.New(npa...).Has(string(*pr.ParameterNotFoundAction)) {
			errs = append(errs, field.NotSupported(pp.Child("parameterNotFoundAction"), *pr.ParameterNotFoundAction, npa))
		}
	}
	if b.Spec.MatchResources != nil {
		errs = append(errs, validateMatchResources(b.Spec.MatchResources, spec.Child("matchResources"))...)
	}
	return errs
}
