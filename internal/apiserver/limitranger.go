package apiserver

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiffhq/skiff/internal/apiserver/validation"
)

// limitRangerAnnotation records which requests and limits the LimitRanger
// set on a pod, in Kubernetes' key and wording.
const limitRangerAnnotation = "kubernetes.io/limit-ranger"

// applyLimitRanges is the defaulting half of Kubernetes' LimitRanger
// admission plugin, on pod create: a container that sets no limit (or no
// request) for a resource gets the `default` (`defaultRequest`) of the
// namespace's Container LimitRanges, and the pod an annotation saying so.
// Its QoS class is computed again from the result, as the pod strategy does
// after admission. It needs the store (the namespace's LimitRanges), so it
// lives in the write path; validation.Default stays a pure function.
//
// The enforcing half (min, max, maxLimitRequestRatio) is
// validateLimitRanges (limitrangervalidate.go).
func (s *Server) applyLimitRanges(ctx context.Context, pod *corev1.Pod) error {
	res, ok := s.reg.Get(schema.GroupVersionResource{Version: "v1", Resource: "limitranges"})
	if !ok {
		return nil
	}
	objs, err := s.objs.list(ctx, res, pod.Namespace)
	if err != nil {
		return fmt.Errorf("list LimitRanges of namespace %s: %w", pod.Namespace, err)
	}
	var set []string
	for _, obj := range objs {
		lr, ok := obj.(*corev1.LimitRange)
		if !ok {
			continue
		}
		def := containerDefaults(lr)
		if len(def.Limits) == 0 && len(def.Requests) == 0 {
			continue
		}
		for i := range pod.Spec.InitContainers {
			set = mergeContainerResources(&pod.Spec.InitContainers[i], def, "init container", set)
		}
		for i := range pod.Spec.Containers {
			set = mergeContainerResources(&pod.Spec.Containers[i], def, "container", set)
		}
	}
	if len(set) == 0 {
		return nil
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[limitRangerAnnotation] = "LimitRanger plugin set: " + strings.Join(set, "; ")
	pod.Status.QOSClass = validation.PodQOS(&pod.Spec)
	return nil
}

// containerDefaults is Kubernetes' defaultContainerResourceRequirements: the
// defaults of the LimitRange's Container items, a later item winning.
func containerDefaults(lr *corev1.LimitRange) corev1.ResourceRequirements {
	req := corev1.ResourceRequirements{Limits: corev1.ResourceList{}, Requests: corev1.ResourceList{}}
	for _, item := range lr.Spec.Limits {
		if item.Type != corev1.LimitTypeContainer {
			continue
		}
		for name, q := range item.DefaultRequest {
			req.Requests[name] = q.DeepCopy()
		}
		for name, q := range item.Default {
			req.Limits[name] = q.DeepCopy()
		}
	}
	return req
}

// mergeContainerResources is Kubernetes' function of that name: it fills
// what c leaves unset from def and appends what it set, in the annotation's
// wording ("cpu, memory limit for container app").
func mergeContainerResources(c *corev1.Container, def corev1.ResourceRequirements, kind string, set []string) []string {
	fill := func(into *corev1.ResourceList, from corev1.ResourceList) []string {
		var names []string
		for name, q := range from {
			if _, ok := (*into)[name]; ok {
				continue
			}
			if *into == nil {
				*into = corev1.ResourceList{}
			}
			(*into)[name] = q.DeepCopy()
			names = append(names, string(name))
		}
		sort.Strings(names)
		return names
	}
	if names := fill(&c.Resources.Requests, def.Requests); len(names) > 0 {
		set = append(set, fmt.Sprintf("%s request for %s %s", strings.Join(names, ", "), kind, c.Name))
	}
	if names := fill(&c.Resources.Limits, def.Limits); len(names) > 0 {
		set = append(set, fmt.Sprintf("%s limit for %s %s", strings.Join(names, ", "), kind, c.Name))
	}
	return set
}
