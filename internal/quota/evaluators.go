// Package quota measures what objects cost against a ResourceQuota and
// decides whether a request fits, as Kubernetes' quota evaluators and its
// ResourceQuota admission plugin do: the same resource names (pods, cpu,
// requests.memory, count/deployments.apps, services.nodeports,
// requests.storage, ...), the same scopes (Terminating, NotTerminating,
// BestEffort, NotBestEffort, PriorityClass) and the same refusals in the
// same words. It reads nothing itself: the API server's admission
// (internal/apiserver/resourcequota.go) and the quota controller
// (internal/controllers/resourcequota) hand it the objects and quotas.
//
// The arithmetic and the generic matching come from k8s.io/apiserver's
// quota/v1 packages; the evaluators for pods, services and claims live in
// k8s.io/kubernetes, which cannot be imported, so they are written here
// after them.
package quota

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	quota "k8s.io/apiserver/pkg/quota/v1"
	"k8s.io/apiserver/pkg/quota/v1/generic"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Evaluator measures one resource's objects.
type Evaluator interface {
	// GroupResource is the resource measured.
	GroupResource() schema.GroupResource
	// HandlesUpdate says whether an update can change the usage (a
	// Service's type, a claim's size); creates always can.
	HandlesUpdate() bool
	// Matches says whether q limits obj: q names a resource this
	// evaluator measures (in q.Status.Hard) and obj is in q's scopes.
	Matches(q *corev1.ResourceQuota, obj runtime.Object) (bool, error)
	// MatchingResources are the names among names this evaluator measures.
	MatchingResources(names []corev1.ResourceName) []corev1.ResourceName
	// Constraints refuses an object that does not say what a quota on the
	// required names needs to count it (a pod without cpu requests under a
	// requests.cpu quota).
	Constraints(required []corev1.ResourceName, obj runtime.Object) error
	// Usage is what obj costs.
	Usage(obj runtime.Object) (corev1.ResourceList, error)
}

// legacyCounts are the object-count names that predate count/<resource>:
// Kubernetes accepts both for these resources.
var legacyCounts = map[schema.GroupResource]corev1.ResourceName{
	{Resource: "configmaps"}:             corev1.ResourceConfigMaps,
	{Resource: "secrets"}:                corev1.ResourceSecrets,
	{Resource: "replicationcontrollers"}: corev1.ResourceReplicationControllers,
	{Resource: "resourcequotas"}:         corev1.ResourceQuotas,
}

// For returns the evaluator of a resource: pods, services and
// persistentvolumeclaims have their own, every other resource counts
// objects (count/<resource>.<group>).
func For(gr schema.GroupResource) Evaluator {
	switch gr {
	case schema.GroupResource{Resource: "pods"}:
		return podEvaluator{}
	case schema.GroupResource{Resource: "services"}:
		return serviceEvaluator{}
	case schema.GroupResource{Resource: "persistentvolumeclaims"}:
		return pvcEvaluator{}
	}
	return countEvaluator{gr: gr, names: []corev1.ResourceName{generic.ObjectCountQuotaResourceNameFor(gr), legacyCounts[gr]}}
}

// ResourcesOf returns the resources whose objects the quota names in hard
// are measured from: pods for cpu, claims for requests.storage, deployments.apps
// for count/deployments.apps, and so on.
func ResourcesOf(hard corev1.ResourceList) []schema.GroupResource {
	set := map[schema.GroupResource]bool{}
	names := quota.ResourceNames(hard)
	for _, gr := range []schema.GroupResource{{Resource: "pods"}, {Resource: "services"}, {Resource: "persistentvolumeclaims"}} {
		if len(For(gr).MatchingResources(names)) > 0 {
			set[gr] = true
		}
	}
	for gr, name := range legacyCounts {
		if _, ok := hard[name]; ok {
			set[gr] = true
		}
	}
	for _, name := range names {
		if rest, ok := strings.CutPrefix(string(name), "count/"); ok {
			res, group, _ := strings.Cut(rest, ".")
			set[schema.GroupResource{Group: group, Resource: res}] = true
		}
	}
	out := make([]schema.GroupResource, 0, len(set))
	for gr := range set {
		out = append(out, gr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// countEvaluator counts objects of any resource.
type countEvaluator struct {
	gr    schema.GroupResource
	names []corev1.ResourceName // count/<resource>, and the legacy name if any ("" if none)
}

func (e countEvaluator) GroupResource() schema.GroupResource { return e.gr }
func (e countEvaluator) HandlesUpdate() bool                 { return false }
func (e countEvaluator) Matches(q *corev1.ResourceQuota, obj runtime.Object) (bool, error) {
	return generic.Matches(q, obj, e.MatchingResources, generic.MatchesNoScopeFunc)
}
func (e countEvaluator) MatchingResources(names []corev1.ResourceName) []corev1.ResourceName {
	return quota.Intersection(names, e.names)
}
func (e countEvaluator) Constraints([]corev1.ResourceName, runtime.Object) error { return nil }
func (e countEvaluator) Usage(runtime.Object) (corev1.ResourceList, error) {
	out := corev1.ResourceList{}
	for _, n := range e.names {
		if n != "" {
			out[n] = *resource.NewQuantity(1, resource.DecimalSI)
		}
	}
	return out, nil
}

// serviceEvaluator: services, services.nodeports, services.loadbalancers.
type serviceEvaluator struct{}

var serviceNames = []corev1.ResourceName{"count/services", corev1.ResourceServices,
	corev1.ResourceServicesNodePorts, corev1.ResourceServicesLoadBalancers}

func (serviceEvaluator) GroupResource() schema.GroupResource {
	return schema.GroupResource{Resource: "services"}
}
func (serviceEvaluator) HandlesUpdate() bool { return true }
func (e serviceEvaluator) Matches(q *corev1.ResourceQuota, obj runtime.Object) (bool, error) {
	return generic.Matches(q, obj, e.MatchingResources, generic.MatchesNoScopeFunc)
}
func (serviceEvaluator) MatchingResources(names []corev1.ResourceName) []corev1.ResourceName {
	return quota.Intersection(names, serviceNames)
}
func (serviceEvaluator) Constraints([]corev1.ResourceName, runtime.Object) error { return nil }
func (serviceEvaluator) Usage(obj runtime.Object) (corev1.ResourceList, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return nil, fmt.Errorf("quota: expected a Service, got %T", obj)
	}
	one := *resource.NewQuantity(1, resource.DecimalSI)
	out := corev1.ResourceList{"count/services": one, corev1.ResourceServices: one,
		corev1.ResourceServicesNodePorts:     *resource.NewQuantity(0, resource.DecimalSI),
		corev1.ResourceServicesLoadBalancers: *resource.NewQuantity(0, resource.DecimalSI)}
	ports := int64(len(svc.Spec.Ports))
	switch svc.Spec.Type {
	case corev1.ServiceTypeNodePort:
		out[corev1.ResourceServicesNodePorts] = *resource.NewQuantity(ports, resource.DecimalSI)
	case corev1.ServiceTypeLoadBalancer:
		// A LoadBalancer allocates node ports unless told not to.
		if svc.Spec.AllocateLoadBalancerNodePorts == nil || *svc.Spec.AllocateLoadBalancerNodePorts {
			out[corev1.ResourceServicesNodePorts] = *resource.NewQuantity(ports, resource.DecimalSI)
		}
		out[corev1.ResourceServicesLoadBalancers] = one
	}
	return out, nil
}

// pvcEvaluator: persistentvolumeclaims, requests.storage and their
// per-class forms (<class>.storageclass.storage.k8s.io/requests.storage).
type pvcEvaluator struct{}

const storageClassSuffix = ".storageclass.storage.k8s.io/"

func (pvcEvaluator) GroupResource() schema.GroupResource {
	return schema.GroupResource{Resource: "persistentvolumeclaims"}
}
func (pvcEvaluator) HandlesUpdate() bool { return true }
func (e pvcEvaluator) Matches(q *corev1.ResourceQuota, obj runtime.Object) (bool, error) {
	return generic.Matches(q, obj, e.MatchingResources, generic.MatchesNoScopeFunc)
}
func (pvcEvaluator) MatchingResources(names []corev1.ResourceName) []corev1.ResourceName {
	var out []corev1.ResourceName
	for _, n := range names {
		switch {
		case n == "count/persistentvolumeclaims", n == corev1.ResourcePersistentVolumeClaims,
			n == corev1.ResourceRequestsStorage:
			out = append(out, n)
		case strings.Contains(string(n), storageClassSuffix):
			_, what, _ := strings.Cut(string(n), storageClassSuffix)
			if what == string(corev1.ResourceRequestsStorage) || what == string(corev1.ResourcePersistentVolumeClaims) {
				out = append(out, n)
			}
		}
	}
	return out
}
func (pvcEvaluator) Constraints([]corev1.ResourceName, runtime.Object) error { return nil }
func (pvcEvaluator) Usage(obj runtime.Object) (corev1.ResourceList, error) {
	pvc, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok {
		return nil, fmt.Errorf("quota: expected a PersistentVolumeClaim, got %T", obj)
	}
	one := *resource.NewQuantity(1, resource.DecimalSI)
	out := corev1.ResourceList{"count/persistentvolumeclaims": one, corev1.ResourcePersistentVolumeClaims: one}
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	if class != "" {
		out[corev1.ResourceName(class+storageClassSuffix+string(corev1.ResourcePersistentVolumeClaims))] = one
	}
	// A claim costs the larger of what it asks for and what it got (a
	// resize in progress), as Kubernetes charges it.
	size, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if got, ok2 := pvc.Status.AllocatedResources[corev1.ResourceStorage]; ok2 && (!ok || got.Cmp(size) > 0) {
		size, ok = got, true
	}
	if ok {
		out[corev1.ResourceRequestsStorage] = size
		if class != "" {
			out[corev1.ResourceName(class+storageClassSuffix+string(corev1.ResourceRequestsStorage))] = size
		}
	}
	return out, nil
}

// podEvaluator: pods and their compute resources, by the pod's scopes.
type podEvaluator struct {
	now func() time.Time // nil: time.Now
}

var podNames = []corev1.ResourceName{"count/pods", corev1.ResourcePods,
	corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage,
	corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory, corev1.ResourceRequestsEphemeralStorage,
	corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory, corev1.ResourceLimitsEphemeralStorage}

// podPrefixes name resources counted by prefix (hugepages-2Mi and
// requests.hugepages-2Mi).
var podPrefixes = []string{corev1.ResourceHugePagesPrefix, corev1.DefaultResourceRequestsPrefix + corev1.ResourceHugePagesPrefix}

// computeNames are what a pod's containers must each declare when a quota
// limits them (Kubernetes' validationSet).
var computeNames = sets.New[corev1.ResourceName](corev1.ResourceCPU, corev1.ResourceMemory,
	corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory, corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory)

func (podEvaluator) GroupResource() schema.GroupResource {
	return schema.GroupResource{Resource: "pods"}
}

// HandlesUpdate is false: a pod's resources cannot change by update
// (in-place resize is not served), so an update never costs more.
func (podEvaluator) HandlesUpdate() bool { return false }

func (e podEvaluator) Matches(q *corev1.ResourceQuota, obj runtime.Object) (bool, error) {
	return generic.Matches(q, obj, e.MatchingResources, podMatchesScope)
}

func (podEvaluator) MatchingResources(names []corev1.ResourceName) []corev1.ResourceName {
	var out []corev1.ResourceName
	for _, n := range names {
		if quota.Contains(podNames, n) || quota.ContainsPrefix(podPrefixes, n) || isExtendedRequest(n) {
			out = append(out, n)
		}
	}
	return out
}

// isExtendedRequest says whether n is requests.<extended resource>
// (requests.example.com/gpu): only requests of extended resources are
// quota'd.
func isExtendedRequest(n corev1.ResourceName) bool {
	rest, ok := strings.CutPrefix(string(n), corev1.DefaultResourceRequestsPrefix)
	return ok && isExtended(corev1.ResourceName(rest))
}

func isExtended(n corev1.ResourceName) bool {
	s := string(n)
	return strings.Contains(s, "/") && !strings.Contains(s, corev1.ResourceDefaultNamespacePrefix) &&
		!strings.HasPrefix(s, corev1.DefaultResourceRequestsPrefix)
}

func (podEvaluator) Constraints(required []corev1.ResourceName, obj runtime.Object) error {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return fmt.Errorf("quota: expected a Pod, got %T", obj)
	}
	// Kubernetes keeps this for compatibility: a quota on cpu or memory
	// needs every container to state it, or it could not be counted.
	want := sets.New(required...).Intersection(computeNames)
	if want.Len() == 0 {
		return nil
	}
	missing := map[corev1.ResourceName]sets.Set[string]{}
	check := func(c *corev1.Container) {
		have := sets.New(quota.ResourceNames(computeUsage(c.Resources.Requests, c.Resources.Limits))...)
		for _, n := range sets.List(want.Difference(have)) {
			if missing[n] == nil {
				missing[n] = sets.New[string]()
			}
			missing[n].Insert(c.Name)
		}
	}
	for i := range pod.Spec.Containers {
		check(&pod.Spec.Containers[i])
	}
	for i := range pod.Spec.InitContainers {
		check(&pod.Spec.InitContainers[i])
	}
	if len(missing) == 0 {
		return nil
	}
	names := make([]string, 0, len(missing))
	for n := range missing {
		names = append(names, string(n))
	}
	sort.Strings(names)
	msgs := make([]string, 0, len(names))
	for _, n := range names {
		msgs = append(msgs, fmt.Sprintf("%s for: %s", n, strings.Join(sets.List(missing[corev1.ResourceName(n)]), ",")))
	}
	return fmt.Errorf("must specify %s", strings.Join(msgs, "; "))
}

// Usage: count/pods always (it counts every pod stored); the rest only
// while the pod is alive (not Succeeded or Failed, not stuck terminating
// past its grace period), as Kubernetes counts.
func (e podEvaluator) Usage(obj runtime.Object) (corev1.ResourceList, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, fmt.Errorf("quota: expected a Pod, got %T", obj)
	}
	out := corev1.ResourceList{"count/pods": *resource.NewQuantity(1, resource.DecimalSI)}
	if !e.counts(pod) {
		return out, nil
	}
	requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	limits := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})
	return quota.Add(out, computeUsage(requests, limits)), nil
}

// counts is Kubernetes' QuotaV1Pod.
func (e podEvaluator) counts(pod *corev1.Pod) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if pod.DeletionTimestamp != nil && pod.DeletionGracePeriodSeconds != nil {
		now := time.Now()
		if e.now != nil {
			now = e.now()
		}
		if now.After(pod.DeletionTimestamp.Add(time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second)) {
			return false
		}
	}
	return true
}

// computeUsage is what requests and limits cost: pods=1, cpu and
// requests.cpu from the request, limits.cpu from the limit, the same for
// memory and ephemeral-storage, hugepages and extended resources by their
// requests.
func computeUsage(requests, limits corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(1, resource.DecimalSI)}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
		if q, ok := requests[r]; ok {
			out[r] = q
			out[corev1.DefaultResourceRequestsPrefix+r] = q
		}
		if q, ok := limits[r]; ok {
			out[corev1.ResourceName("limits.")+r] = q
		}
	}
	for r, q := range requests {
		if strings.HasPrefix(string(r), corev1.ResourceHugePagesPrefix) {
			out[r] = q
			out[corev1.DefaultResourceRequestsPrefix+r] = q
		}
		if isExtended(r) {
			out[corev1.DefaultResourceRequestsPrefix+r] = q
		}
	}
	return out
}

// podMatchesScope is Kubernetes' podMatchesScopeFunc.
func podMatchesScope(sel corev1.ScopedResourceSelectorRequirement, obj runtime.Object) (bool, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return false, fmt.Errorf("quota: expected a Pod, got %T", obj)
	}
	switch sel.ScopeName {
	case corev1.ResourceQuotaScopeTerminating:
		return pod.Spec.ActiveDeadlineSeconds != nil && *pod.Spec.ActiveDeadlineSeconds >= 0, nil
	case corev1.ResourceQuotaScopeNotTerminating:
		return pod.Spec.ActiveDeadlineSeconds == nil || *pod.Spec.ActiveDeadlineSeconds < 0, nil
	case corev1.ResourceQuotaScopeBestEffort:
		return bestEffort(pod), nil
	case corev1.ResourceQuotaScopeNotBestEffort:
		return !bestEffort(pod), nil
	case corev1.ResourceQuotaScopePriorityClass:
		if sel.Operator == corev1.ScopeSelectorOpExists {
			return pod.Spec.PriorityClassName != "", nil
		}
		// Kubernetes matches a label selector against the one label
		// PriorityClass=<name>, which every pod has (maybe empty): In and
		// NotIn compare the name, DoesNotExist never matches.
		return matchesValues(sel, pod.Spec.PriorityClassName)
	case corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
		return usesCrossNamespaceAffinity(pod), nil
	}
	return false, nil
}

func matchesValues(sel corev1.ScopedResourceSelectorRequirement, v string) (bool, error) {
	switch sel.Operator {
	case corev1.ScopeSelectorOpIn:
		return sets.New(sel.Values...).Has(v), nil
	case corev1.ScopeSelectorOpNotIn:
		return !sets.New(sel.Values...).Has(v), nil
	case corev1.ScopeSelectorOpDoesNotExist:
		return false, nil
	}
	return false, fmt.Errorf("quota: unknown scope selector operator %q", sel.Operator)
}

// bestEffort: no container requests or limits cpu or memory.
func bestEffort(pod *corev1.Pod) bool {
	all := append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		for _, l := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if q, ok := l[r]; ok && !q.IsZero() {
					return false
				}
			}
		}
	}
	return true
}

func usesCrossNamespaceAffinity(pod *corev1.Pod) bool {
	a := pod.Spec.Affinity
	if a == nil {
		return false
	}
	terms := func(req []corev1.PodAffinityTerm, pref []corev1.WeightedPodAffinityTerm) bool {
		for _, t := range req {
			if len(t.Namespaces) > 0 || t.NamespaceSelector != nil {
				return true
			}
		}
		for _, t := range pref {
			if len(t.PodAffinityTerm.Namespaces) > 0 || t.PodAffinityTerm.NamespaceSelector != nil {
				return true
			}
		}
		return false
	}
	if p := a.PodAffinity; p != nil && terms(p.RequiredDuringSchedulingIgnoredDuringExecution, p.PreferredDuringSchedulingIgnoredDuringExecution) {
		return true
	}
	if p := a.PodAntiAffinity; p != nil && terms(p.RequiredDuringSchedulingIgnoredDuringExecution, p.PreferredDuringSchedulingIgnoredDuringExecution) {
		return true
	}
	return false
}
