package printers

import (
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Printers of admissionregistration.k8s.io, with kubectl's columns for
// ValidatingAdmissionPolicies and their bindings.
func init() {
	register("admissionregistration.k8s.io", "ValidatingAdmissionPolicy", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Validations", "integer", "Validations indicates the number of validation rules defined in this configuration"),
		col("ParamKind", "string", "ParamKind specifies the kind of resources used to parameterize this policy"),
		ageColumn,
	}, func(p *admissionregistrationv1.ValidatingAdmissionPolicy, now time.Time) []any {
		paramKind := "<unset>"
		if pk := p.Spec.ParamKind; pk != nil {
			paramKind = pk.APIVersion + "/" + pk.Kind
		}
		return []any{p.Name, int64(len(p.Spec.Validations)), paramKind, age(p.CreationTimestamp, now)}
	}))
	register("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("PolicyName", "string", "PolicyName indicates the policy definition which the policy binding binded to"),
		col("ParamRef", "string", "ParamRef indicates the param resource which sets the configration param"),
		ageColumn,
	}, func(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding, now time.Time) []any {
		param := "<unset>"
		if pr := b.Spec.ParamRef; pr != nil {
			switch {
			case pr.Name != "" && pr.Namespace != "":
				param = pr.Namespace + "/" + pr.Name
			case pr.Name != "":
				param = "*/" + pr.Name
			case pr.Selector != nil:
				param = metav1.FormatLabelSelector(pr.Selector)
			}
		}
		return []any{b.Name, b.Spec.PolicyName, param, age(b.CreationTimestamp, now)}
	}))
}
