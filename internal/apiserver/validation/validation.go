// Package validation defaults and validates the built-in kinds the way the
// Kubernetes API server does, for the typed objects of k8s.io/api.
//
// Kubernetes keeps its defaulting and validation in k8s.io/kubernetes, which
// skiff does not import (it would pull in the whole of Kubernetes), so this
// package carries its own: the rules a user actually meets, with the field
// paths, error types and, where it was easy, the exact messages of Kubernetes
// v1.32 (feature gates at their v1.32 defaults). The API server turns the
// returned field.ErrorList into a 422 Invalid status whose causes kubectl
// prints.
//
// The request flow is the apiserver's: decode, Default, then ValidateCreate
// or ValidateUpdate. A few things the real apiserver does around validation
// are left to the caller because they need state this package does not have:
//
//   - Job selector generation needs the uid: a Job without manualSelector
//     gets a selector and template labels built from it. Default does this
//     when the uid is already set; a caller that assigns the uid after
//     Default calls GenerateJobSelector before ValidateCreate.
//   - Allocation: Service clusterIP(s) and nodePorts, and carrying them over on
//     update when the request leaves them empty; generation, uid,
//     creationTimestamp and resourceVersion (ValidateUpdate ignores an empty
//     resourceVersion, since the store resolves unconditional updates).
//   - Preparing updates: keeping status on a main-resource update, keeping
//     spec on a status update, dropping type-dependent Service fields when its
//     type changes.
//   - Admission plugins (service account, default tolerations, priority,
//     LimitRanger, quota).
//
// Nothing here panics on any input: every pointer is checked, and the exported
// functions recover as a last resort, reporting an internal error. Nor does
// anything stall: quantities with absurd exponents (1e-10000000), whose
// arithmetic takes seconds, are rejected before any comparison.
//
// Two rules follow Kubernetes 1.32 where older releases differ: environment
// variable names follow the relaxed rule Kubernetes 1.32 enables by default
// (any printable ASCII but '='), and StatefulSet names must be DNS labels
// (Kubernetes 1.27+).
package validation

import (
	"fmt"
	"reflect"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Default fills the fields Kubernetes defaults, in place, for the typed
// k8s.io/api objects (*corev1.Pod, *appsv1.Deployment, ...): the values of
// Kubernetes' defaulting functions plus the few the apiserver's create
// strategies set (a pod's status.phase and qosClass, a namespace's phase).
// Unknown types, and nil, are left alone. Default is idempotent, so it is
// safe on create and update alike.
func Default(obj runtime.Object) {
	if isNil(obj) {
		return
	}
	defer func() {
		// A defaulting bug must not take the server down; the object is then
		// validated as it stands.
		_ = recover()
	}()
	defaultObject(obj)
}

// ValidateCreate checks a new object the way the Kubernetes API server does
// for its kind and returns the field errors (nil when the object is valid).
// namespaced says whether the kind is namespace-scoped: metadata.namespace is
// required if it is and forbidden if it is not. Kinds without rules of their
// own get the metadata checks only, with DNS-subdomain names.
func ValidateCreate(obj runtime.Object, namespaced bool) (errs field.ErrorList) {
	defer recoverInto(&errs)
	if isNil(obj) {
		return field.ErrorList{field.Required(field.NewPath("metadata"), "an object is required")}
	}
	if acc, err := meta.Accessor(obj); err == nil {
		errs = append(errs, apimachineryvalidation.ValidateObjectMetaAccessor(acc, namespaced, nameFunc(obj), metadataPath)...)
	}
	if bad := extremeQuantities(obj); len(bad) > 0 {
		return append(errs, bad...)
	}
	return append(errs, validateObject(obj, nil)...)
}

// ValidateUpdate checks obj, the new state of old, the way the Kubernetes API
// server does on update: name, namespace, uid and creationTimestamp are
// immutable, the kind's immutable fields may not change, and the new object
// must itself be valid. obj and old must be of the same type. namespaced is
// accepted for symmetry with ValidateCreate; metadata.namespace cannot change
// on update, so its presence was settled at create.
//
// An empty metadata.resourceVersion is not reported: the store resolves
// unconditional updates (copying the stored version in) before validating, as
// Kubernetes' does.
func ValidateUpdate(obj, old runtime.Object, namespaced bool) (errs field.ErrorList) {
	_ = namespaced
	defer recoverInto(&errs)
	if isNil(obj) || isNil(old) {
		return field.ErrorList{field.Required(field.NewPath("metadata"), "both the new and the old object are required")}
	}
	if reflect.TypeOf(obj) != reflect.TypeOf(old) {
		return field.ErrorList{field.Invalid(field.NewPath("kind"), fmt.Sprintf("%T", obj),
			fmt.Sprintf("may not change (was %T)", old))}
	}
	if bad := extremeQuantities(obj); len(bad) > 0 {
		return bad
	}
	if bad := extremeQuantities(old); len(bad) > 0 {
		// Only a stored object that predates this check can hold one; the
		// comparisons below would stall on it.
		return field.ErrorList{field.InternalError(nil, fmt.Errorf("stored object holds an extreme quantity: %v", bad.ToAggregate()))}
	}
	newAcc, err1 := meta.Accessor(obj)
	oldAcc, err2 := meta.Accessor(old)
	if err1 == nil && err2 == nil {
		for _, e := range apimachineryvalidation.ValidateObjectMetaAccessorUpdate(newAcc, oldAcc, metadataPath) {
			if e.Field == "metadata.resourceVersion" && newAcc.GetResourceVersion() == "" {
				continue
			}
			errs = append(errs, e)
		}
	}
	return append(errs, validateObject(obj, old)...)
}

var metadataPath = field.NewPath("metadata")

// nameFunc is the metadata.name rule Kubernetes uses for the kind: most kinds
// take DNS-1123 subdomains; a few whose name ends up in a DNS label or a URL
// path segment are stricter or looser.
func nameFunc(obj runtime.Object) apimachineryvalidation.ValidateNameFunc {
	switch obj.(type) {
	case *corev1.Namespace:
		return apimachineryvalidation.NameIsDNSLabel
	case *corev1.Service:
		// Service names become DNS labels and environment variable names,
		// hence RFC 1035 (must start with a letter).
		return apimachineryvalidation.NameIsDNS1035Label
	case *appsv1.StatefulSet:
		// Pod hostnames are built from it (Kubernetes 1.27+).
		return apimachineryvalidation.NameIsDNSLabel
	case *rbacv1.Role, *rbacv1.RoleBinding, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding:
		// RBAC names such as "system:controller:foo" only need to be URL-safe.
		return path.ValidatePathSegmentName
	default:
		return apimachineryvalidation.NameIsDNSSubdomain
	}
}

// validateObject runs the per-kind rules. old is nil on create, otherwise the
// same type as obj.
func validateObject(obj, old runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *corev1.Pod:
		return validatePod(o, oldAs[*corev1.Pod](old))
	case *corev1.PodTemplate:
		return validatePodTemplate(o, oldAs[*corev1.PodTemplate](old))
	case *corev1.ReplicationController:
		return validateReplicationController(o, oldAs[*corev1.ReplicationController](old))
	case *corev1.Service:
		return validateService(o, oldAs[*corev1.Service](old))
	case *corev1.Endpoints:
		return validateEndpoints(o)
	case *corev1.ConfigMap:
		return validateConfigMap(o, oldAs[*corev1.ConfigMap](old))
	case *corev1.Secret:
		return validateSecret(o, oldAs[*corev1.Secret](old))
	case *corev1.ServiceAccount:
		return validateServiceAccount(o)
	case *corev1.Namespace:
		return validateNamespace(o)
	case *corev1.Node:
		return validateNode(o, oldAs[*corev1.Node](old))
	case *corev1.Event:
		return validateEvent(o)
	case *corev1.PersistentVolume:
		return validatePersistentVolume(o, oldAs[*corev1.PersistentVolume](old))
	case *corev1.PersistentVolumeClaim:
		return validatePersistentVolumeClaim(o, oldAs[*corev1.PersistentVolumeClaim](old))
	case *corev1.ResourceQuota:
		return validateResourceQuota(o)
	case *corev1.LimitRange:
		return validateLimitRange(o)
	default:
		return validateOtherGroups(obj, old)
	}
}

// validateOtherGroups dispatches the kinds outside the core group.
func validateOtherGroups(obj, old runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return validateDeployment(o, oldAs[*appsv1.Deployment](old))
	case *appsv1.ReplicaSet:
		return validateReplicaSet(o, oldAs[*appsv1.ReplicaSet](old))
	case *appsv1.StatefulSet:
		return validateStatefulSet(o, oldAs[*appsv1.StatefulSet](old))
	case *appsv1.DaemonSet:
		return validateDaemonSet(o, oldAs[*appsv1.DaemonSet](old))
	case *appsv1.ControllerRevision:
		return validateControllerRevision(o, oldAs[*appsv1.ControllerRevision](old))
	case *batchv1.Job:
		return validateJob(o, oldAs[*batchv1.Job](old))
	case *batchv1.CronJob:
		return validateCronJob(o, oldAs[*batchv1.CronJob](old))
	case *autoscalingv2.HorizontalPodAutoscaler:
		return validateHPA(o)
	case *networkingv1.Ingress:
		return validateIngress(o)
	case *networkingv1.IngressClass:
		return validateIngressClass(o, oldAs[*networkingv1.IngressClass](old))
	case *networkingv1.NetworkPolicy:
		return validateNetworkPolicy(o)
	case *discoveryv1.EndpointSlice:
		return validateEndpointSlice(o, oldAs[*discoveryv1.EndpointSlice](old))
	case *nodev1.RuntimeClass:
		return validateRuntimeClass(o, oldAs[*nodev1.RuntimeClass](old))
	case *storagev1.StorageClass:
		return validateStorageClass(o, oldAs[*storagev1.StorageClass](old))
	case *coordinationv1.Lease:
		return validateLease(o)
	case *policyv1.PodDisruptionBudget:
		return validatePDB(o)
	case *schedulingv1.PriorityClass:
		return validatePriorityClass(o, oldAs[*schedulingv1.PriorityClass](old))
	case *rbacv1.Role:
		return validatePolicyRules(o.Rules, true, field.NewPath("rules"))
	case *rbacv1.ClusterRole:
		return validateClusterRole(o)
	case *rbacv1.RoleBinding:
		return validateRoleBinding(&o.RoleRef, o.Subjects, true, roleRefOf(oldAs[*rbacv1.RoleBinding](old)))
	case *rbacv1.ClusterRoleBinding:
		return validateRoleBinding(&o.RoleRef, o.Subjects, false, clusterRoleRefOf(oldAs[*rbacv1.ClusterRoleBinding](old)))
	case *admissionregistrationv1.ValidatingAdmissionPolicy:
		return validateAdmissionPolicy(o, oldAs[*admissionregistrationv1.ValidatingAdmissionPolicy](old))
	case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		return validateAdmissionPolicyBinding(o)
	}
	return nil
}

// oldAs converts the old object of an update to the type of the new one, or
// returns nil (create). ValidateUpdate has already checked the types match.
func oldAs[T runtime.Object](old runtime.Object) T {
	var zero T
	if isNil(old) {
		return zero
	}
	t, ok := old.(T)
	if !ok {
		return zero
	}
	return t
}

// isNil reports whether v is nil or a typed nil pointer, which meta.Accessor
// would happily accept and then dereference.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// recoverInto turns a panic into an internal error, so a validation bug
// reaches the client as a 422 with a cause rather than a dropped connection.
func recoverInto(errs *field.ErrorList) {
	if r := recover(); r != nil {
		*errs = append(*errs, field.InternalError(nil, fmt.Errorf("%s: %v", panicMarker, r)))
	}
}

// panicMarker starts the detail of an error made from a recovered panic; the
// tests look for it.
const panicMarker = "validation panicked"
