package validation

import (
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validatePDB is ValidatePodDisruptionBudgetSpec: at most one of
// minAvailable and maxUnavailable, each an int or a percentage.
func validatePDB(pdb *policyv1.PodDisruptionBudget) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	spec := &pdb.Spec
	if spec.MinAvailable != nil && spec.MaxUnavailable != nil {
		errs = append(errs, field.Invalid(sp, spec.MinAvailable.String()+" / "+spec.MaxUnavailable.String(),
			"minAvailable and maxUnavailable cannot be both set"))
	}
	for _, f := range []struct {
		name string
		v    *intstr.IntOrString
	}{{"minAvailable", spec.MinAvailable}, {"maxUnavailable", spec.MaxUnavailable}} {
		if f.v != nil {
			errs = append(errs, intOrPercent(*f.v, sp.Child(f.name))...)
			errs = append(errs, notMoreThan100Percent(*f.v, sp.Child(f.name))...)
		}
	}
	errs = append(errs, labelSelector(spec.Selector, sp.Child("selector"))...)
	if spec.UnhealthyPodEvictionPolicy != nil {
		errs = append(errs, enum(*spec.UnhealthyPodEvictionPolicy, sp.Child("unhealthyPodEvictionPolicy"),
			policyv1.AlwaysAllow, policyv1.IfHealthyBudget)...)
	}
	return errs
}
