package validation

import (
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateRuntimeClass is ValidateRuntimeClass and
// ValidateRuntimeClassUpdate.
func validateRuntimeClass(rc, old *nodev1.RuntimeClass) field.ErrorList {
	hp := field.NewPath("handler")
	errs := requiredName(rc.Handler, hp, dnsLabel)
	if rc.Overhead != nil {
		for name, q := range rc.Overhead.PodFixed {
			op := field.NewPath("overhead", "podFixed").Key(string(name))
			errs = append(errs, validateContainerResourceName(string(name), op)...)
			errs = append(errs, quantityNonNegative(string(name), q, op)...)
		}
	}
	if s := rc.Scheduling; s != nil {
		errs = append(errs, validateLabels(s.NodeSelector, field.NewPath("scheduling", "nodeSelector"))...)
		errs = append(errs, validateTolerations(s.Tolerations, field.NewPath("scheduling", "tolerations"))...)
	}
	if old != nil {
		errs = append(errs, immutable(rc.Handler, old.Handler, hp)...)
	}
	return errs
}
