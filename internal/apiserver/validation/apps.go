package validation

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateWorkloadSelector checks a workload's selector (required, valid, not
// empty) and that its template's labels match it, returning the errors.
// kind names the workload in the "empty selector" message the way Kubernetes
// does.
func validateWorkloadSelector(sel *metav1.LabelSelector, t *corev1.PodTemplateSpec, sp *field.Path, kind string) field.ErrorList {
	var errs field.ErrorList
	selPath := sp.Child("selector")
	if sel == nil {
		errs = append(errs, field.Required(selPath, ""))
	} else {
		errs = append(errs, labelSelector(sel, selPath)...)
		if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
			errs = append(errs, field.Invalid(selPath, sel, "empty selector is invalid for "+kind))
		}
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return append(errs, field.Invalid(selPath, sel, "invalid label selector"))
	}
	if t != nil && !selector.Empty() && !selector.Matches(labels.Set(t.Labels)) {
		errs = append(errs, field.Invalid(sp.Child("template", "metadata", "labels"), t.Labels, selectorMismatchMsg))
	}
	return errs
}

// validateDeployment is ValidateDeployment and, for apps/v1, the immutable
// selector of ValidateDeploymentUpdate.
func validateDeployment(d, old *appsv1.Deployment) field.ErrorList {
	sp := field.NewPath("spec")
	spec := &d.Spec
	errs := nonNegativePtr(spec.Replicas, sp.Child("replicas"))
	errs = append(errs, validateWorkloadSelector(spec.Selector, &spec.Template, sp, "deployment")...)
	errs = append(errs, validateWorkloadTemplate(&spec.Template, sp.Child("template"), "ReplicaSet")...)
	errs = append(errs, validateDeploymentStrategy(&spec.Strategy, sp.Child("strategy"))...)
	errs = append(errs, nonNegative(int64(spec.MinReadySeconds), sp.Child("minReadySeconds"))...)
	errs = append(errs, nonNegativePtr(spec.RevisionHistoryLimit, sp.Child("revisionHistoryLimit"))...)
	if pds := spec.ProgressDeadlineSeconds; pds != nil {
		errs = append(errs, nonNegative(int64(*pds), sp.Child("progressDeadlineSeconds"))...)
		if *pds <= spec.MinReadySeconds {
			errs = append(errs, field.Invalid(sp.Child("progressDeadlineSeconds"), *pds, "must be greater than minReadySeconds"))
		}
	}
	if old != nil {
		errs = append(errs, immutable(spec.Selector, old.Spec.Selector, sp.Child("selector"))...)
	}
	return errs
}

func validateDeploymentStrategy(s *appsv1.DeploymentStrategy, p *field.Path) field.ErrorList {
	switch s.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if s.RollingUpdate != nil {
			return field.ErrorList{field.Forbidden(p.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'")}
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		ru := s.RollingUpdate
		rp := p.Child("rollingUpdate")
		if ru == nil {
			return field.ErrorList{field.Required(rp, "this should be defaulted and never be nil")}
		}
		var errs field.ErrorList
		if ru.MaxUnavailable == nil || ru.MaxSurge == nil {
			// Defaulting fills both; an object that skipped it is incomplete.
			if ru.MaxUnavailable == nil {
				errs = append(errs, field.Required(rp.Child("maxUnavailable"), ""))
			}
			if ru.MaxSurge == nil {
				errs = append(errs, field.Required(rp.Child("maxSurge"), ""))
			}
			return errs
		}
		errs = append(errs, intOrPercent(*ru.MaxUnavailable, rp.Child("maxUnavailable"))...)
		errs = append(errs, intOrPercent(*ru.MaxSurge, rp.Child("maxSurge"))...)
		if intOrPercentValue(*ru.MaxUnavailable) == 0 && intOrPercentValue(*ru.MaxSurge) == 0 {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), ru.MaxUnavailable.String(), "may not be 0 when `maxSurge` is 0"))
		}
		return append(errs, notMoreThan100Percent(*ru.MaxUnavailable, rp.Child("maxUnavailable"))...)
	default:
		// Kubernetes reports this at the strategy itself.
		return field.ErrorList{field.NotSupported(p, s.Type, []appsv1.DeploymentStrategyType{
			appsv1.RecreateDeploymentStrategyType, appsv1.RollingUpdateDeploymentStrategyType})}
	}
	return nil
}

// validateReplicaSet is ValidateReplicaSet (whose empty-selector message says
// "deployment", as Kubernetes' does).
func validateReplicaSet(rs, old *appsv1.ReplicaSet) field.ErrorList {
	sp := field.NewPath("spec")
	spec := &rs.Spec
	errs := nonNegativePtr(spec.Replicas, sp.Child("replicas"))
	errs = append(errs, nonNegative(int64(spec.MinReadySeconds), sp.Child("minReadySeconds"))...)
	errs = append(errs, validateWorkloadSelector(spec.Selector, &spec.Template, sp, "deployment")...)
	errs = append(errs, validateWorkloadTemplate(&spec.Template, sp.Child("template"), "ReplicaSet")...)
	if old != nil {
		errs = append(errs, immutable(spec.Selector, old.Spec.Selector, sp.Child("selector"))...)
	}
	return errs
}

// validateDaemonSet is ValidateDaemonSet and ValidateDaemonSetUpdate.
func validateDaemonSet(ds, old *appsv1.DaemonSet) field.ErrorList {
	sp := field.NewPath("spec")
	spec := &ds.Spec
	errs := validateWorkloadSelector(spec.Selector, &spec.Template, sp, "daemonset")
	errs = append(errs, validateWorkloadTemplate(&spec.Template, sp.Child("template"), "DaemonSet")...)
	errs = append(errs, nonNegative(int64(spec.MinReadySeconds), sp.Child("minReadySeconds"))...)
	errs = append(errs, nonNegativePtr(spec.RevisionHistoryLimit, sp.Child("revisionHistoryLimit"))...)

	up := sp.Child("updateStrategy")
	switch spec.UpdateStrategy.Type {
	case appsv1.OnDeleteDaemonSetStrategyType:
	case appsv1.RollingUpdateDaemonSetStrategyType:
		ru := spec.UpdateStrategy.RollingUpdate
		rp := up.Child("rollingUpdate")
		if ru == nil {
			errs = append(errs, field.Required(rp, ""))
			break
		}
		hasUnavailable := ru.MaxUnavailable != nil && intOrPercentValue(*ru.MaxUnavailable) != 0
		hasSurge := ru.MaxSurge != nil && intOrPercentValue(*ru.MaxSurge) != 0
		if hasUnavailable {
			errs = append(errs, intOrPercent(*ru.MaxUnavailable, rp.Child("maxUnavailable"))...)
			errs = append(errs, notMoreThan100Percent(*ru.MaxUnavailable, rp.Child("maxUnavailable"))...)
		}
		if hasSurge {
			errs = append(errs, intOrPercent(*ru.MaxSurge, rp.Child("maxSurge"))...)
			errs = append(errs, notMoreThan100Percent(*ru.MaxSurge, rp.Child("maxSurge"))...)
		}
		switch {
		case hasUnavailable && hasSurge:
			errs = append(errs, field.Invalid(rp.Child("maxSurge"), ru.MaxSurge.String(), "may not be set when maxUnavailable is non-zero"))
		case !hasUnavailable && !hasSurge:
			errs = append(errs, field.Required(rp.Child("maxUnavailable"), "cannot be 0 when maxSurge is 0"))
		}
	default:
		errs = append(errs, field.NotSupported(up, spec.UpdateStrategy.Type, []appsv1.DaemonSetUpdateStrategyType{
			appsv1.RollingUpdateDaemonSetStrategyType, appsv1.OnDeleteDaemonSetStrategyType}))
	}
	if old != nil {
		errs = append(errs, immutable(spec.Selector, old.Spec.Selector, sp.Child("selector"))...)
	}
	return errs
}

// validateStatefulSet is ValidateStatefulSet and ValidateStatefulSetUpdate.
func validateStatefulSet(s, old *appsv1.StatefulSet) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	spec := &s.Spec
	switch spec.PodManagementPolicy {
	case "":
		errs = append(errs, field.Required(sp.Child("podManagementPolicy"), ""))
	case appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		errs = append(errs, field.Invalid(sp.Child("podManagementPolicy"), spec.PodManagementPolicy,
			fmt.Sprintf("must be '%s' or '%s'", appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement)))
	}
	up := sp.Child("updateStrategy")
	switch spec.UpdateStrategy.Type {
	case "":
		errs = append(errs, field.Required(up, ""))
	case appsv1.OnDeleteStatefulSetStrategyType:
		if spec.UpdateStrategy.RollingUpdate != nil {
			errs = append(errs, field.Invalid(up.Child("rollingUpdate"), spec.UpdateStrategy.RollingUpdate,
				fmt.Sprintf("only allowed for updateStrategy '%s'", appsv1.RollingUpdateStatefulSetStrategyType)))
		}
	case appsv1.RollingUpdateStatefulSetStrategyType:
		if ru := spec.UpdateStrategy.RollingUpdate; ru != nil {
			rp := up.Child("rollingUpdate")
			errs = append(errs, nonNegativePtr(ru.Partition, rp.Child("partition"))...)
			if ru.MaxUnavailable != nil {
				errs = append(errs, intOrPercent(*ru.MaxUnavailable, rp.Child("maxUnavailable"))...)
				if intOrPercentValue(*ru.MaxUnavailable) == 0 {
					errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), ru.MaxUnavailable.String(), "cannot be 0"))
				}
				errs = append(errs, notMoreThan100Percent(*ru.MaxUnavailable, rp.Child("maxUnavailable"))...)
			}
		}
	default:
		errs = append(errs, field.Invalid(up, spec.UpdateStrategy.Type,
			fmt.Sprintf("must be '%s' or '%s'", appsv1.RollingUpdateStatefulSetStrategyType, appsv1.OnDeleteStatefulSetStrategyType)))
	}
	if rp := spec.PersistentVolumeClaimRetentionPolicy; rp != nil {
		pp := sp.Child("persistentVolumeClaimRetentionPolicy")
		errs = append(errs, enum(rp.WhenDeleted, pp.Child("whenDeleted"),
			appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType)...)
		errs = append(errs, enum(rp.WhenScaled, pp.Child("whenScaled"),
			appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType)...)
	}
	errs = append(errs, nonNegativePtr(spec.Replicas, sp.Child("replicas"))...)
	errs = append(errs, nonNegative(int64(spec.MinReadySeconds), sp.Child("minReadySeconds"))...)
	errs = append(errs, nonNegativePtr(spec.RevisionHistoryLimit, sp.Child("revisionHistoryLimit"))...)
	if spec.Ordinals != nil {
		errs = append(errs, nonNegative(int64(spec.Ordinals.Start), sp.Child("ordinals", "start"))...)
	}
	if spec.ServiceName != "" {
		// It becomes the pods' subdomain.
		errs = append(errs, dnsLabel(spec.ServiceName, sp.Child("serviceName"))...)
	}
	errs = append(errs, validateWorkloadSelector(spec.Selector, &spec.Template, sp, "statefulset")...)
	errs = append(errs, validateWorkloadTemplate(statefulSetPodTemplate(s), sp.Child("template"), "StatefulSet")...)
	for i := range spec.VolumeClaimTemplates {
		vp := sp.Child("volumeClaimTemplates").Index(i)
		vct := &spec.VolumeClaimTemplates[i]
		if vct.Name == "" {
			errs = append(errs, field.Required(vp.Child("metadata", "name"), ""))
		} else {
			errs = append(errs, dnsSubdomain(vct.Name, vp.Child("metadata", "name"))...)
		}
		errs = append(errs, validatePVCSpec(&vct.Spec, vp.Child("spec"))...)
	}
	if old == nil {
		return errs
	}
	// Only these may change; everything else in spec is fixed at create.
	next, prev := *spec.DeepCopy(), *old.Spec.DeepCopy()
	next.Replicas, next.Ordinals, next.Template = prev.Replicas, prev.Ordinals, prev.Template
	next.UpdateStrategy, next.RevisionHistoryLimit = prev.UpdateStrategy, prev.RevisionHistoryLimit
	next.PersistentVolumeClaimRetentionPolicy, next.MinReadySeconds = prev.PersistentVolumeClaimRetentionPolicy, prev.MinReadySeconds
	if !semanticEqual(next, prev) {
		errs = append(errs, field.Forbidden(sp, "updates to statefulset spec for fields other than 'replicas', 'ordinals', "+
			"'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
	}
	return errs
}

// statefulSetPodTemplate is the template as the controller makes pods of
// it: each volumeClaimTemplate is a persistentVolumeClaim volume of that
// name (replacing a template volume of the same name), so containers may
// mount it. Kubernetes skips the template's pod spec for StatefulSets for
// this reason; skiff checks the spec the pods will have instead.
func statefulSetPodTemplate(s *appsv1.StatefulSet) *corev1.PodTemplateSpec {
	if len(s.Spec.VolumeClaimTemplates) == 0 {
		return &s.Spec.Template
	}
	t := s.Spec.Template.DeepCopy()
	claims := map[string]bool{}
	for i := range s.Spec.VolumeClaimTemplates {
		claims[s.Spec.VolumeClaimTemplates[i].Name] = true
	}
	vols := t.Spec.Volumes[:0]
	for _, v := range t.Spec.Volumes {
		if !claims[v.Name] {
			vols = append(vols, v)
		}
	}
	for i := range s.Spec.VolumeClaimTemplates {
		name := s.Spec.VolumeClaimTemplates[i].Name
		if name == "" {
			continue // reported on the claim template
		}
		vols = append(vols, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name + "-" + s.Name + "-0"}}})
	}
	t.Spec.Volumes = vols
	return t
}

// validateControllerRevision: a revision number that is not negative and
// data that never changes.
func validateControllerRevision(cr, old *appsv1.ControllerRevision) field.ErrorList {
	errs := nonNegative(cr.Revision, field.NewPath("revision"))
	if old != nil {
		errs = append(errs, immutable(cr.Data, old.Data, field.NewPath("data"))...)
	}
	return errs
}
