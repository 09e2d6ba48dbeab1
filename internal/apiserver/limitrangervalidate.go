package apiserver

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// validateLimitRanges is the enforcing half of Kubernetes' LimitRanger
// admission plugin: a pod (on create) or a claim (on create and update)
// must respect the min, max and maxLimitRequestRatio of its namespace's
// LimitRanges (Container and Pod items for pods, PersistentVolumeClaim
// items for claims). It refuses with 403 and Kubernetes' messages
// ("maximum cpu usage per Container is 1, but limit is 2").
func (s *Server) validateLimitRanges(ctx context.Context, res *resources.Resource, obj runtime.Object) error {
	pod, isPod := obj.(*corev1.Pod)
	pvc, isPVC := obj.(*corev1.PersistentVolumeClaim)
	if !isPod && !isPVC {
		return nil
	}
	lrRes, ok := s.reg.Get(schema.GroupVersionResource{Version: "v1", Resource: "limitranges"})
	if !ok {
		return nil
	}
	m := mustMeta(obj)
	objs, err := s.objs.list(ctx, lrRes, m.GetNamespace())
	if err != nil {
		return fmt.Errorf("list LimitRanges of namespace %s: %w", m.GetNamespace(), err)
	}
	var errs []error
	for _, o := range objs {
		lr, ok := o.(*corev1.LimitRange)
		if !ok {
			continue
		}
		if isPod {
			errs = append(errs, podLimitErrors(lr, pod)...)
		} else {
			errs = append(errs, claimLimitErrors(lr, pvc)...)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewForbidden(res.GroupResource(), m.GetName(), utilerrors.NewAggregate(errs))
}

// sortedNames ranges over a ResourceList in a fixed order, so messages
// do not change from one request to the next.
func sortedNames(l corev1.ResourceList) []corev1.ResourceName {
	out := make([]corev1.ResourceName, 0, len(l))
	for n := range l {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// checkItem applies one LimitRange item's constraints to requests and
// limits.
func checkItem(item corev1.LimitRangeItem, requests, limits corev1.ResourceList) []error {
	var errs []error
	kind := string(item.Type)
	for _, n := range sortedNames(item.Min) {
		if err := minConstraint(kind, string(n), item.Min[n], requests, limits); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range sortedNames(item.Max) {
		if err := maxConstraint(kind, string(n), item.Max[n], requests, limits); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range sortedNames(item.MaxLimitRequestRatio) {
		if err := ratioConstraint(kind, string(n), item.MaxLimitRequestRatio[n], requests, limits); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func podLimitErrors(lr *corev1.LimitRange, pod *corev1.Pod) []error {
	var errs []error
	for _, item := range lr.Spec.Limits {
		switch item.Type {
		case corev1.LimitTypeContainer:
			for _, c := range pod.Spec.Containers {
				errs = append(errs, checkItem(item, c.Resources.Requests, c.Resources.Limits)...)
			}
			for _, c := range pod.Spec.InitContainers {
				errs = append(errs, checkItem(item, c.Resources.Requests, c.Resources.Limits)...)
			}
		case corev1.LimitTypePod:
			// The pod's effective requests and limits: containers summed,
			// init containers' peaks, as the scheduler counts them.
			opts := resourcehelper.PodResourcesOptions{ExcludeOverhead: true}
			errs = append(errs, checkItem(item, resourcehelper.PodRequests(pod, opts), resourcehelper.PodLimits(pod, opts))...)
		}
	}
	return errs
}

func claimLimitErrors(lr *corev1.LimitRange, pvc *corev1.PersistentVolumeClaim) []error {
	var errs []error
	for _, item := range lr.Spec.Limits {
		if item.Type != corev1.LimitTypePersistentVolumeClaim {
			continue
		}
		kind := string(item.Type)
		// A claim's limits are not the user's to set: only its requests
		// are held to min and max.
		for _, n := range sortedNames(item.Min) {
			if err := minConstraint(kind, string(n), item.Min[n], pvc.Spec.Resources.Requests, corev1.ResourceList{}); err != nil {
				errs = append(errs, err)
			}
		}
		for _, n := range sortedNames(item.Max) {
			if err := maxRequestConstraint(kind, string(n), item.Max[n], pvc.Spec.Resources.Requests); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// values compares in milli-units where nothing overflows, as Kubernetes'
// requestLimitEnforcedValues does.
func values(req, lim, enforced resource.Quantity) (int64, int64, int64) {
	r, l, e := req.Value(), lim.Value(), enforced.Value()
	if r <= resource.MaxMilliValue && l <= resource.MaxMilliValue && e <= resource.MaxMilliValue {
		return req.MilliValue(), lim.MilliValue(), enforced.MilliValue()
	}
	return r, l, e
}

func minConstraint(kind, name string, enforced resource.Quantity, requests, limits corev1.ResourceList) error {
	req, reqOK := requests[corev1.ResourceName(name)]
	lim, limOK := limits[corev1.ResourceName(name)]
	r, l, e := values(req, lim, enforced)
	switch {
	case !reqOK:
		return fmt.Errorf("minimum %s usage per %s is %s.  No request is specified", name, kind, enforced.String())
	case r < e:
		return fmt.Errorf("minimum %s usage per %s is %s, but request is %s", name, kind, enforced.String(), req.String())
	case limOK && l < e:
		return fmt.Errorf("minimum %s usage per %s is %s, but limit is %s", name, kind, enforced.String(), lim.String())
	}
	return nil
}

func maxConstraint(kind, name string, enforced resource.Quantity, requests, limits corev1.ResourceList) error {
	req, reqOK := requests[corev1.ResourceName(name)]
	lim, limOK := limits[corev1.ResourceName(name)]
	r, l, e := values(req, lim, enforced)
	switch {
	case !limOK:
		return fmt.Errorf("maximum %s usage per %s is %s.  No limit is specified", name, kind, enforced.String())
	case l > e:
		return fmt.Errorf("maximum %s usage per %s is %s, but limit is %s", name, kind, enforced.String(), lim.String())
	case reqOK && r > e:
		return fmt.Errorf("maximum %s usage per %s is %s, but request is %s", name, kind, enforced.String(), req.String())
	}
	return nil
}

func maxRequestConstraint(kind, name string, enforced resource.Quantity, requests corev1.ResourceList) error {
	req, reqOK := requests[corev1.ResourceName(name)]
	r, _, e := values(req, resource.Quantity{}, enforced)
	switch {
	case !reqOK:
		return fmt.Errorf("maximum %s usage per %s is %s.  No request is specified", name, kind, enforced.String())
	case r > e:
		return fmt.Errorf("maximum %s usage per %s is %s, but request is %s", name, kind, enforced.String(), req.String())
	}
	return nil
}

func ratioConstraint(kind, name string, enforced resource.Quantity, requests, limits corev1.ResourceList) error {
	req, reqOK := requests[corev1.ResourceName(name)]
	lim, limOK := limits[corev1.ResourceName(name)]
	r, l, _ := values(req, lim, enforced)
	if !reqOK || r == 0 {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but no request is specified or request is 0", name, kind, enforced.String())
	}
	if !limOK || l == 0 {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but no limit is specified or limit is 0", name, kind, enforced.String())
	}
	observed := float64(l) / float64(r)
	shown, max := observed, float64(enforced.Value())
	if enforced.Value() <= resource.MaxMilliValue {
		observed, max = observed*1000, float64(enforced.MilliValue())
	}
	if observed > max {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but provided ratio is %f", name, kind, enforced.String(), shown)
	}
	return nil
}
