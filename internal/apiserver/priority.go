package apiserver

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
	"github.com/skiffhq/skiff/internal/apiserver/validation"
)

var priorityClassesGVR = schema.GroupVersionResource{Group: "scheduling.k8s.io", Version: "v1", Resource: "priorityclasses"}

// priorityClasses lists every PriorityClass.
func (s *Server) priorityClasses(ctx context.Context) ([]*schedulingv1.PriorityClass, *resources.Resource, error) {
	res, ok := s.reg.Get(priorityClassesGVR)
	if !ok {
		return nil, nil, nil
	}
	objs, err := s.objs.list(ctx, res, "")
	if err != nil {
		return nil, res, fmt.Errorf("list PriorityClasses: %w", err)
	}
	out := make([]*schedulingv1.PriorityClass, 0, len(objs))
	for _, o := range objs {
		if pc, ok := o.(*schedulingv1.PriorityClass); ok {
			out = append(out, pc)
		}
	}
	return out, res, nil
}

// admitPodPriority is Kubernetes' Priority admission plugin on pod create:
// the pod's priorityClassName (or, without one, the globalDefault class)
// becomes spec.priority and spec.preemptionPolicy; with neither the pod
// gets priority 0 and PreemptLowerPriority. An unknown class, or a
// priority or policy the pod sets itself that the class contradicts, is
// Forbidden (403), with Kubernetes' words.
func (s *Server) admitPodPriority(ctx context.Context, pod *corev1.Pod) error {
	classes, _, err := s.priorityClasses(ctx)
	if err != nil {
		return err
	}
	podsGR := schema.GroupResource{Resource: "pods"}
	var class *schedulingv1.PriorityClass
	if name := pod.Spec.PriorityClassName; name != "" {
		for _, pc := range classes {
			if pc.Name == name {
				class = pc
			}
		}
		if class == nil {
			return apierrors.NewForbidden(podsGR, pod.Name, fmt.Errorf("no PriorityClass with name %v was found", name))
		}
	} else {
		class = globalDefault(classes)
	}
	priority, policy := int32(0), corev1.PreemptLowerPriority
	if class != nil {
		priority = class.Value
		if class.PreemptionPolicy != nil {
			policy = *class.PreemptionPolicy
		}
		pod.Spec.PriorityClassName = class.Name
	}
	if pod.Spec.Priority != nil && *pod.Spec.Priority != priority {
		return apierrors.NewForbidden(podsGR, pod.Name, fmt.Errorf(
			"the integer value of priority (%d) must not be provided in pod spec; priority admission controller computed %d from the given PriorityClass name",
			*pod.Spec.Priority, priority))
	}
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy != policy {
		return apierrors.NewForbidden(podsGR, pod.Name, fmt.Errorf(
			"the string value of PreemptionPolicy (%s) must not be provided in pod spec; priority admission controller computed %s from the given PriorityClass name",
			*pod.Spec.PreemptionPolicy, policy))
	}
	pod.Spec.Priority, pod.Spec.PreemptionPolicy = &priority, &policy
	return nil
}

// globalDefault is the class pods without a priorityClassName get: of the
// globalDefault classes (admission keeps it to one, but a race between
// servers could make two) the lowest, as Kubernetes picks.
func globalDefault(classes []*schedulingv1.PriorityClass) *schedulingv1.PriorityClass {
	var def *schedulingv1.PriorityClass
	for _, pc := range classes {
		if pc.GlobalDefault && (def == nil || pc.Value < def.Value) {
			def = pc
		}
	}
	return def
}

// admitPriorityClass refuses a second globalDefault class (Forbidden, as
// Kubernetes' admission does): which one pods get would be a guess.
func (s *Server) admitPriorityClass(ctx context.Context, pc *schedulingv1.PriorityClass) error {
	if !pc.GlobalDefault {
		return nil
	}
	classes, res, err := s.priorityClasses(ctx)
	if err != nil {
		return err
	}
	for _, other := range classes {
		if other.GlobalDefault && other.Name != pc.Name {
			return apierrors.NewForbidden(res.GroupResource(), pc.Name, fmt.Errorf(
				"PriorityClass %v is marked as default. Only one default can exist", other.Name))
		}
	}
	return nil
}

// ensurePriorityClasses creates system-node-critical and
// system-cluster-critical, as Kubernetes' API server does at start.
func (s *Server) ensurePriorityClasses(ctx context.Context) error {
	res, ok := s.reg.Get(priorityClassesGVR)
	if !ok {
		return nil
	}
	for _, pc := range validation.SystemPriorityClasses() {
		if _, err := s.objs.get(ctx, res, "", pc.Name); err == nil {
			continue
		} else if !apierrors.IsNotFound(err) {
			return err
		}
		pc.SetGroupVersionKind(res.GVK())
		if _, err := s.createObject(ctx, res, pc, nil, ""); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create PriorityClass %s: %w", pc.Name, err)
		}
	}
	return nil
}
