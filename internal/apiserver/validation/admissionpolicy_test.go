package validation

import (
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func replicasPolicy(expr string) *admissionregistrationv1.ValidatingAdmissionPolicy {
	return &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-policy.example.com"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				}}}},
			Validations: []admissionregistrationv1.Validation{{Expression: expr}},
		},
	}
}

// TestAdmissionPolicyValidation: a good policy passes and gets Kubernetes'
// defaults; a CEL expression that does not compile, a missing
// matchConstraints and no validations are field errors on the policy.
func TestAdmissionPolicyValidation(t *testing.T) {
	good := replicasPolicy("object.spec.replicas <= 5")
	Default(good)
	if errs := ValidateCreate(good, false); len(errs) > 0 {
		t.Fatalf("valid policy refused: %v", errs)
	}
	if good.Spec.FailurePolicy == nil || *good.Spec.FailurePolicy != admissionregistrationv1.Fail ||
		good.Spec.MatchConstraints.NamespaceSelector == nil || *good.Spec.MatchConstraints.ResourceRules[0].Scope != "*" {
		t.Fatalf("defaults not applied: %+v", good.Spec)
	}
	for name, c := range map[string]struct {
		mut  func(*admissionregistrationv1.ValidatingAdmissionPolicy)
		want string
	}{
		"syntax": {func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.Validations[0].Expression = "object.spec.replicas <="
		}, "spec.validations[0].expression: Invalid value"},
		"type": {func(p *admissionregistrationv1.ValidatingAdmissionPolicy) { p.Spec.Validations[0].Expression = "'a'" }, "spec.validations[0].expression"},
		"params absent": {func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.Validations[0].Expression = "params.x == 1"
		}, "undeclared reference to 'params'"},
		"message expr": {func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.Validations[0].MessageExpression = "1 +"
		}, "spec.validations[0].messageExpression"},
		"no match":      {func(p *admissionregistrationv1.ValidatingAdmissionPolicy) { p.Spec.MatchConstraints = nil }, "spec.matchConstraints: Required value"},
		"no validation": {func(p *admissionregistrationv1.ValidatingAdmissionPolicy) { p.Spec.Validations = nil }, "validations or auditAnnotations must contain at least one item"},
		"operation": {func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.MatchConstraints.ResourceRules[0].Operations = []admissionregistrationv1.OperationType{"PATCH"}
		}, "spec.matchConstraints.resourceRules[0].operations[0]: Unsupported value"},
	} {
		p := replicasPolicy("object.spec.replicas <= 5")
		c.mut(p)
		Default(p)
		errs := ValidateCreate(p, false)
		if !strings.Contains(errs.ToAggregate().Error(), c.want) {
			t.Errorf("%s: errors %v, want one with %q", name, errs, c.want)
		}
	}
	withParams := replicasPolicy("object.spec.replicas <= int(params.data.maxReplicas)")
	withParams.Spec.ParamKind = &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"}
	if errs := ValidateCreate(withParams, false); len(errs) > 0 {
		t.Fatalf("policy with params refused: %v", errs)
	}
}

// TestAdmissionPolicyBindingValidation: policyName and validationActions
// are required, actions must be known and not both Deny and Warn, a
// paramRef needs a name or selector and a parameterNotFoundAction.
func TestAdmissionPolicyBindingValidation(t *testing.T) {
	binding := func(actions ...admissionregistrationv1.ValidationAction) *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
		return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "b"},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "p", ValidationActions: actions}}
	}
	if errs := ValidateCreate(binding(admissionregistrationv1.Deny, admissionregistrationv1.Audit), false); len(errs) > 0 {
		t.Fatalf("valid binding refused: %v", errs)
	}
	noName := binding(admissionregistrationv1.Deny)
	noName.Spec.PolicyName = ""
	noRef := binding(admissionregistrationv1.Deny)
	noRef.Spec.ParamRef = &admissionregistrationv1.ParamRef{Name: "x"}
	for want, b := range map[string]*admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		"spec.policyName: Required value":                         noName,
		"spec.validationActions: Required value":                  binding(),
		"spec.validationActions[0]: Unsupported value: \"Block\"": binding("Block"),
		"must not contain both Deny and Warn":                     binding(admissionregistrationv1.Deny, admissionregistrationv1.Warn),
		"spec.validationActions[1]: Duplicate value":              binding(admissionregistrationv1.Warn, admissionregistrationv1.Warn),
		"spec.paramRef.parameterNotFoundAction: Required value":   noRef,
	} {
		if errs := ValidateCreate(b, false); !strings.Contains(errs.ToAggregate().Error(), want) {
			t.Errorf("errors %v, want one with %q", errs, want)
		}
	}
}
