package validation

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The priorities Kubernetes fixes (pkg/apis/scheduling): user classes stay
// at or below HighestUserDefinablePriority, so nothing a user makes can
// outrank the two system classes that keep a cluster's own pods running.
const (
	HighestUserDefinablePriority = int32(1000000000)
	SystemCriticalPriority       = 2 * HighestUserDefinablePriority
	SystemPriorityClassPrefix    = "system-"
	SystemClusterCritical        = SystemPriorityClassPrefix + "cluster-critical"
	SystemNodeCritical           = SystemPriorityClassPrefix + "node-critical"
)

// systemClasses are the classes every cluster has, as Kubernetes'
// SystemPriorityClasses: the API server creates them at start.
var systemClasses = []struct {
	name, description string
	value             int32
}{
	{SystemNodeCritical, "Used for system critical pods that must not be moved from their current node.", SystemCriticalPriority + 1000},
	{SystemClusterCritical, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.", SystemCriticalPriority},
}

// SystemPriorityClasses returns new copies of the built-in classes.
func SystemPriorityClasses() []*schedulingv1.PriorityClass {
	out := make([]*schedulingv1.PriorityClass, 0, len(systemClasses))
	for _, c := range systemClasses {
		pc := &schedulingv1.PriorityClass{Value: c.value, Description: c.description}
		pc.Name = c.name
		defaultPriorityClass(pc)
		out = append(out, pc)
	}
	return out
}

// defaultPriorityClass is SetDefaults_PriorityClass.
func defaultPriorityClass(pc *schedulingv1.PriorityClass) {
	if pc.PreemptionPolicy == nil {
		p := corev1.PreemptLowerPriority
		pc.PreemptionPolicy = &p
	}
}

// validatePriorityClass is ValidatePriorityClass and, on update,
// ValidatePriorityClassUpdate: a "system-" name is reserved for the
// built-in classes with their values; a user class is at most
// HighestUserDefinablePriority; value and preemptionPolicy never change.
// That only one class is the global default needs the store: the API
// server's admission checks it.
func validatePriorityClass(pc, old *schedulingv1.PriorityClass) field.ErrorList {
	var errs field.ErrorList
	if strings.HasPrefix(pc.Name, SystemPriorityClassPrefix) {
		if err := knownSystemClass(pc); err != nil {
			errs = append(errs, field.Forbidden(field.NewPath("metadata", "name"),
				"priority class names with '"+SystemPriorityClassPrefix+"' prefix are reserved for system use only. error: "+err.Error()))
		}
	} else if pc.Value > HighestUserDefinablePriority {
		errs = append(errs, field.Forbidden(field.NewPath("value"),
			fmt.Sprintf("maximum allowed value of a user defined priority is %v", HighestUserDefinablePriority)))
	}
	if pc.PreemptionPolicy != nil {
		errs = append(errs, enum(*pc.PreemptionPolicy, field.NewPath("preemptionPolicy"),
			corev1.PreemptLowerPriority, corev1.PreemptNever)...)
	}
	if old != nil {
		if pc.Value != old.Value {
			errs = append(errs, field.Forbidden(field.NewPath("value"), "may not be changed in an update."))
		}
		errs = append(errs, immutable(pc.PreemptionPolicy, old.PreemptionPolicy, field.NewPath("preemptionPolicy"))...)
	}
	return errs
}

// knownSystemClass is IsKnownSystemPriorityClass.
func knownSystemClass(pc *schedulingv1.PriorityClass) error {
	var v int32
	known := false
	for _, c := range systemClasses {
		if c.name == pc.Name {
			v, known = c.value, true
		}
	}
	switch {
	case !known:
		return fmt.Errorf("%v is not a known system priority class", pc.Name)
	case v != pc.Value:
		return fmt.Errorf("value of %v PriorityClass must be %v", pc.Name, v)
	case pc.GlobalDefault:
		return fmt.Errorf("globalDefault of %v PriorityClass must be false", pc.Name)
	}
	return nil
}
