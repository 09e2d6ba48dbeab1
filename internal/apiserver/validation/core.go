package validation

import (
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ConfigMap and Secret

// validateConfigMap is ValidateConfigMap and ValidateConfigMapUpdate.
func validateConfigMap(cm, old *corev1.ConfigMap) field.ErrorList {
	var errs field.ErrorList
	size := 0
	for k, v := range cm.Data {
		errs = invalidEach(errs, field.NewPath("data").Key(k), k, validation.IsConfigMapKey(k))
		if _, dup := cm.BinaryData[k]; dup {
			errs = append(errs, field.Invalid(field.NewPath("data").Key(k), k, "duplicate of key present in binaryData"))
		}
		size += len(v)
	}
	for k, v := range cm.BinaryData {
		errs = invalidEach(errs, field.NewPath("binaryData").Key(k), k, validation.IsConfigMapKey(k))
		if _, dup := cm.Data[k]; dup {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, "duplicate of key present in data"))
		}
		size += len(v)
	}
	if size > maxDataSize {
		// Kubernetes reports the size of the whole object at the empty path.
		errs = append(errs, field.TooLong(field.NewPath(""), "", maxDataSize))
	}
	if old != nil && old.Immutable != nil && *old.Immutable {
		if cm.Immutable == nil || !*cm.Immutable {
			errs = append(errs, field.Forbidden(field.NewPath("immutable"), immutableWhenSetMsg))
		}
		if !semanticEqual(cm.Data, old.Data) {
			errs = append(errs, field.Forbidden(field.NewPath("data"), immutableWhenSetMsg))
		}
		if !semanticEqual(cm.BinaryData, old.BinaryData) {
			errs = append(errs, field.Forbidden(field.NewPath("binaryData"), immutableWhenSetMsg))
		}
	}
	return errs
}

// validateSecret is ValidateSecret and ValidateSecretUpdate.
func validateSecret(s, old *corev1.Secret) field.ErrorList {
	var errs field.ErrorList
	dataPath := field.NewPath("data")
	size := 0
	for k, v := range s.Data {
		errs = invalidEach(errs, dataPath.Key(k), k, validation.IsConfigMapKey(k))
		size += len(v)
	}
	// stringData is folded into data by Default; check it in case it was not.
	for k, v := range s.StringData {
		errs = invalidEach(errs, field.NewPath("stringData").Key(k), k, validation.IsConfigMapKey(k))
		if _, dup := s.Data[k]; !dup {
			size += len(v)
		}
	}
	if size > maxDataSize {
		errs = append(errs, field.TooLong(dataPath, "", maxDataSize))
	}
	has := func(k string) bool {
		_, ok := s.Data[k]
		if !ok {
			_, ok = s.StringData[k]
		}
		return ok
	}
	get := func(k string) []byte {
		if v, ok := s.StringData[k]; ok {
			return []byte(v)
		}
		return s.Data[k]
	}
	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		if s.Annotations[corev1.ServiceAccountNameKey] == "" {
			errs = append(errs, field.Required(field.NewPath("metadata", "annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeDockercfg, corev1.SecretTypeDockerConfigJson:
		key := corev1.DockerConfigKey
		if s.Type == corev1.SecretTypeDockerConfigJson {
			key = corev1.DockerConfigJsonKey
		}
		if !has(key) {
			errs = append(errs, field.Required(dataPath.Key(key), ""))
			break
		}
		if err := json.Unmarshal(get(key), &map[string]any{}); err != nil {
			errs = append(errs, field.Invalid(dataPath.Key(key), "<secret contents redacted>", err.Error()))
		}
	case corev1.SecretTypeBasicAuth:
		if !has(corev1.BasicAuthUsernameKey) && !has(corev1.BasicAuthPasswordKey) {
			errs = append(errs, field.Required(dataPath.Key(corev1.BasicAuthUsernameKey), ""),
				field.Required(dataPath.Key(corev1.BasicAuthPasswordKey), ""))
		}
	case corev1.SecretTypeSSHAuth:
		if len(get(corev1.SSHAuthPrivateKey)) == 0 {
			errs = append(errs, field.Required(dataPath.Key(corev1.SSHAuthPrivateKey), ""))
		}
	case corev1.SecretTypeTLS:
		if !has(corev1.TLSCertKey) {
			errs = append(errs, field.Required(dataPath.Key(corev1.TLSCertKey), ""))
		}
		if !has(corev1.TLSPrivateKeyKey) {
			errs = append(errs, field.Required(dataPath.Key(corev1.TLSPrivateKeyKey), ""))
		}
	default:
		// Opaque and user-defined types have no required keys; the type
		// itself must be a qualified name.
		if s.Type != corev1.SecretTypeOpaque && s.Type != "" {
			errs = append(errs, qualifiedName(string(s.Type), field.NewPath("type"))...)
		}
	}
	if old != nil {
		errs = append(errs, immutable(s.Type, old.Type, field.NewPath("type"))...)
		if old.Immutable != nil && *old.Immutable {
			if s.Immutable == nil || !*s.Immutable {
				errs = append(errs, field.Forbidden(field.NewPath("immutable"), immutableWhenSetMsg))
			}
			if !semanticEqual(s.Data, old.Data) || len(s.StringData) > 0 {
				errs = append(errs, field.Forbidden(dataPath, immutableWhenSetMsg))
			}
		}
	}
	return errs
}

// ServiceAccount, Namespace, Node, Event

// validateServiceAccount: Kubernetes checks only a service account's
// metadata.
func validateServiceAccount(*corev1.ServiceAccount) field.ErrorList { return nil }

func validateNamespace(ns *corev1.Namespace) field.ErrorList {
	var errs field.ErrorList
	for i, f := range ns.Spec.Finalizers {
		fp := field.NewPath("spec", "finalizers").Index(i)
		errs = append(errs, qualifiedName(string(f), fp)...)
		if !strings.Contains(string(f), "/") && f != corev1.FinalizerKubernetes {
			errs = append(errs, field.Invalid(fp, f, "name is neither a standard finalizer name nor is it fully qualified"))
		}
	}
	return errs
}

func validateNode(n, old *corev1.Node) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	seen := map[string]bool{}
	for i, t := range n.Spec.Taints {
		tp := sp.Child("taints").Index(i)
		errs = append(errs, qualifiedName(t.Key, tp.Child("key"))...)
		errs = invalidEach(errs, tp.Child("value"), t.Value, validation.IsValidLabelValue(t.Value))
		errs = append(errs, enum(t.Effect, tp.Child("effect"),
			corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute)...)
		key := t.Key + "/" + string(t.Effect)
		if seen[key] {
			e := field.Duplicate(tp, t.Key)
			e.Detail = "taints must be unique by key and effect pair"
			errs = append(errs, e)
		}
		seen[key] = true
	}
	for i, c := range n.Spec.PodCIDRs {
		if len(cidr(c, nil)) > 0 {
			errs = append(errs, field.Invalid(sp.Child("podCIDRs").Index(i), c, "must be valid CIDR"))
		}
	}
	if len(n.Spec.PodCIDRs) > 2 {
		errs = append(errs, field.Invalid(sp.Child("podCIDRs"), n.Spec.PodCIDRs, "may specify no more than one CIDR for each IP family"))
	}
	for _, list := range []struct {
		name string
		rl   corev1.ResourceList
	}{{"capacity", n.Status.Capacity}, {"allocatable", n.Status.Allocatable}} {
		for name, q := range list.rl {
			errs = append(errs, quantityNonNegative(string(name), q, field.NewPath("status", list.name).Key(string(name)))...)
		}
	}
	if old == nil {
		return errs
	}
	if len(old.Spec.PodCIDRs) > 0 && !semanticEqual(old.Spec.PodCIDRs, n.Spec.PodCIDRs) {
		errs = append(errs, field.Forbidden(sp.Child("podCIDRs"), "node updates may not change podCIDR except from \"\" to valid"))
	}
	if old.Spec.ProviderID != "" && old.Spec.ProviderID != n.Spec.ProviderID {
		errs = append(errs, field.Forbidden(sp.Child("providerID"), "node updates may not change providerID except from \"\" to valid"))
	}
	if n.Spec.DoNotUseExternalID != old.Spec.DoNotUseExternalID {
		errs = append(errs, field.Forbidden(sp.Child("externalID"), "may not be updated"))
	}
	addrs := map[corev1.NodeAddress]bool{}
	for i, a := range n.Status.Addresses {
		if addrs[a] {
			errs = append(errs, field.Duplicate(field.NewPath("status", "addresses").Index(i), a))
		}
		addrs[a] = true
	}
	return errs
}

// validateEvent is the core/v1 (legacy) event check: an event lives in the
// namespace of the object it is about; events about cluster-scoped objects
// may live in "default".
func validateEvent(ev *corev1.Event) field.ErrorList {
	ns, objNS := ev.Namespace, ev.InvolvedObject.Namespace
	if objNS == "" && ns != "" && ns != "default" || objNS != "" && ns != objNS {
		return field.ErrorList{field.Invalid(field.NewPath("involvedObject", "namespace"), objNS, "does not match event.namespace")}
	}
	return nil
}

// Storage

var accessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany, corev1.ReadWriteMany,
	corev1.ReadWriteOnce, corev1.ReadWriteOncePod}

func validateAccessModes(modes []corev1.PersistentVolumeAccessMode, p *field.Path, requiredMsg string) field.ErrorList {
	var errs field.ErrorList
	if len(modes) == 0 {
		return field.ErrorList{field.Required(p, requiredMsg)}
	}
	for _, m := range modes {
		errs = append(errs, enum(m, p, accessModes...)...)
		if m == corev1.ReadWriteOncePod && len(modes) > 1 {
			errs = append(errs, field.Forbidden(p, "may not use ReadWriteOncePod with other access modes"))
		}
	}
	return errs
}

func validatePersistentVolume(pv, old *corev1.PersistentVolume) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	spec := &pv.Spec
	errs = append(errs, validateAccessModes(spec.AccessModes, sp.Child("accessModes"), "")...)
	if len(spec.Capacity) == 0 {
		errs = append(errs, field.Required(sp.Child("capacity"), ""))
	} else if _, ok := spec.Capacity[corev1.ResourceStorage]; !ok || len(spec.Capacity) > 1 {
		errs = append(errs, field.NotSupported(sp.Child("capacity"), spec.Capacity, []corev1.ResourceName{corev1.ResourceStorage}))
	}
	for name, q := range spec.Capacity {
		errs = append(errs, quantityNonNegative(string(name), q, sp.Child("capacity").Key(string(name)))...)
	}
	set := setFields(&spec.PersistentVolumeSource)
	if len(set) == 0 {
		errs = append(errs, field.Required(sp, "must specify a volume type"))
	}
	for _, extra := range set[min(1, len(set)):] {
		errs = append(errs, field.Forbidden(sp.Child(extra), "may not specify more than 1 volume type"))
	}
	if s := spec.HostPath; s != nil {
		if s.Path == "" {
			errs = append(errs, field.Required(sp.Child("hostPath", "path"), ""))
		}
		errs = append(errs, noBacksteps(s.Path, sp.Child("hostPath", "path"))...)
	}
	if s := spec.Local; s != nil {
		if s.Path == "" {
			errs = append(errs, field.Required(sp.Child("local", "path"), ""))
		}
		if spec.NodeAffinity == nil {
			errs = append(errs, field.Required(sp.Child("nodeAffinity"), "Local volume requires node affinity"))
		}
	}
	if s := spec.NFS; s != nil {
		if s.Server == "" {
			errs = append(errs, field.Required(sp.Child("nfs", "server"), ""))
		}
		if !strings.HasPrefix(s.Path, "/") {
			errs = append(errs, field.Invalid(sp.Child("nfs", "path"), s.Path, "must be an absolute path"))
		}
	}
	if s := spec.CSI; s != nil {
		if s.Driver == "" {
			errs = append(errs, field.Required(sp.Child("csi", "driver"), ""))
		}
		if s.VolumeHandle == "" {
			errs = append(errs, field.Required(sp.Child("csi", "volumeHandle"), ""))
		}
	}
	errs = append(errs, optionalEnum(spec.PersistentVolumeReclaimPolicy, sp.Child("persistentVolumeReclaimPolicy"),
		corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRecycle, corev1.PersistentVolumeReclaimRetain)...)
	if spec.VolumeMode != nil {
		errs = append(errs, enum(*spec.VolumeMode, sp.Child("volumeMode"), corev1.PersistentVolumeBlock, corev1.PersistentVolumeFilesystem)...)
	}
	if spec.StorageClassName != "" {
		errs = append(errs, dnsSubdomain(spec.StorageClassName, sp.Child("storageClassName"))...)
	}
	if old == nil {
		return errs
	}
	if !semanticEqual(spec.PersistentVolumeSource, old.Spec.PersistentVolumeSource) {
		errs = append(errs, field.Forbidden(sp.Child("persistentvolumesource"), "spec.persistentvolumesource is immutable after creation"))
	}
	errs = append(errs, immutable(spec.VolumeMode, old.Spec.VolumeMode, sp.Child("volumeMode"))...)
	if old.Spec.NodeAffinity != nil {
		errs = append(errs, immutable(spec.NodeAffinity, old.Spec.NodeAffinity, sp.Child("nodeAffinity"))...)
	}
	return errs
}

func validatePersistentVolumeClaim(pvc, old *corev1.PersistentVolumeClaim) field.ErrorList {
	sp := field.NewPath("spec")
	errs := validatePVCSpec(&pvc.Spec, sp)
	if old == nil {
		return errs
	}
	// A claim is fixed once created, except that the binder sets volumeName
	// once and a bound claim may be resized or change attributes class.
	next := pvc.Spec.DeepCopy()
	prev := old.Spec.DeepCopy()
	if prev.VolumeName == "" {
		prev.VolumeName = next.VolumeName
	}
	if old.Status.Phase == corev1.ClaimBound {
		if next.Resources.Requests != nil {
			if q, ok := prev.Resources.Requests[corev1.ResourceStorage]; ok {
				next.Resources.Requests[corev1.ResourceStorage] = q
			} else {
				delete(next.Resources.Requests, corev1.ResourceStorage)
			}
		}
		next.VolumeAttributesClassName = prev.VolumeAttributesClassName
	}
	if !semanticEqual(*next, *prev) {
		changed := diffFields(prev, next)
		errs = append(errs, field.Forbidden(sp, "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"+
			"\n  changed: spec."+strings.Join(changed, ", spec.")))
	}
	newSize := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	oldSize := old.Spec.Resources.Requests[corev1.ResourceStorage]
	if newSize.Cmp(oldSize) < 0 {
		errs = append(errs, field.Forbidden(sp.Child("resources", "requests", "storage"), "field can not be less than previous value"))
	}
	return errs
}

// validatePVCSpec is ValidatePersistentVolumeClaimSpec, also used for the
// claim templates of StatefulSets and ephemeral volumes.
func validatePVCSpec(spec *corev1.PersistentVolumeClaimSpec, p *field.Path) field.ErrorList {
	errs := validateAccessModes(spec.AccessModes, p.Child("accessModes"), "at least 1 access mode is required")
	errs = append(errs, labelSelector(spec.Selector, p.Child("selector"))...)
	// Kubernetes reports the storage request at spec.resources[storage].
	storagePath := p.Child("resources").Key(string(corev1.ResourceStorage))
	if q, ok := spec.Resources.Requests[corev1.ResourceStorage]; !ok {
		errs = append(errs, field.Required(storagePath, ""))
	} else if q.Sign() <= 0 {
		errs = append(errs, field.Invalid(storagePath, q.String(), "must be greater than zero"))
	}
	for _, list := range []struct {
		name string
		rl   corev1.ResourceList
	}{{"requests", spec.Resources.Requests}, {"limits", spec.Resources.Limits}} {
		for name, q := range list.rl {
			rp := p.Child("resources", list.name).Key(string(name))
			errs = append(errs, validateResourceName(string(name), rp)...)
			errs = append(errs, quantityNonNegative(string(name), q, rp)...)
		}
	}
	if spec.StorageClassName != nil && *spec.StorageClassName != "" {
		errs = append(errs, dnsSubdomain(*spec.StorageClassName, p.Child("storageClassName"))...)
	}
	if spec.VolumeMode != nil {
		errs = append(errs, enum(*spec.VolumeMode, p.Child("volumeMode"), corev1.PersistentVolumeBlock, corev1.PersistentVolumeFilesystem)...)
	}
	for _, ds := range []struct {
		name string
		ref  *corev1.TypedLocalObjectReference
	}{{"dataSource", spec.DataSource}, {"dataSourceRef", typedRef(spec.DataSourceRef)}} {
		if ds.ref == nil {
			continue
		}
		dp := p.Child(ds.name)
		if ds.ref.Name == "" {
			errs = append(errs, field.Required(dp.Child("name"), ""))
		}
		if ds.ref.Kind == "" {
			errs = append(errs, field.Required(dp.Child("kind"), ""))
		}
		if (ds.ref.APIGroup == nil || *ds.ref.APIGroup == "") && ds.ref.Kind != "" && ds.ref.Kind != "PersistentVolumeClaim" {
			errs = append(errs, field.Invalid(dp, ds.ref.Kind, "must be 'PersistentVolumeClaim' when referencing the default apiGroup"))
		}
	}
	return errs
}

func typedRef(r *corev1.TypedObjectReference) *corev1.TypedLocalObjectReference {
	if r == nil {
		return nil
	}
	return &corev1.TypedLocalObjectReference{APIGroup: r.APIGroup, Kind: r.Kind, Name: r.Name}
}

// ResourceQuota and LimitRange

var quotaScopes = []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort,
	corev1.ResourceQuotaScopeCrossNamespacePodAffinity, corev1.ResourceQuotaScopeNotBestEffort,
	corev1.ResourceQuotaScopeNotTerminating, corev1.ResourceQuotaScopePriorityClass, corev1.ResourceQuotaScopeTerminating}

func validateResourceQuota(q *corev1.ResourceQuota) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	for name, v := range q.Spec.Hard {
		hp := sp.Child("hard").Key(string(name))
		errs = append(errs, validateResourceName(string(name), hp)...)
		errs = append(errs, quantityNonNegative(string(name), v, hp)...)
	}
	for i, s := range q.Spec.Scopes {
		errs = append(errs, enum(s, sp.Child("scopes").Index(i), quotaScopes...)...)
	}
	if ss := q.Spec.ScopeSelector; ss != nil {
		for i, e := range ss.MatchExpressions {
			ep := sp.Child("scopeSelector", "matchExpressions").Index(i)
			errs = append(errs, enum(e.ScopeName, ep.Child("scopeName"), quotaScopes...)...)
			errs = append(errs, enum(e.Operator, ep.Child("operator"), corev1.ScopeSelectorOpIn,
				corev1.ScopeSelectorOpNotIn, corev1.ScopeSelectorOpExists, corev1.ScopeSelectorOpDoesNotExist)...)
		}
	}
	return errs
}

func validateLimitRange(lr *corev1.LimitRange) field.ErrorList {
	var errs field.ErrorList
	for i, item := range lr.Spec.Limits {
		ip := field.NewPath("spec", "limits").Index(i)
		errs = append(errs, enum(item.Type, ip.Child("type"), corev1.LimitTypeContainer,
			corev1.LimitTypePersistentVolumeClaim, corev1.LimitTypePod)...)
		for _, list := range []struct {
			name string
			rl   corev1.ResourceList
		}{{"max", item.Max}, {"min", item.Min}, {"default", item.Default}, {"defaultRequest", item.DefaultRequest}, {"maxLimitRequestRatio", item.MaxLimitRequestRatio}} {
			for name, q := range list.rl {
				rp := ip.Child(list.name).Key(string(name))
				errs = append(errs, validateResourceName(string(name), rp)...)
				errs = append(errs, quantityNonNegative(string(name), q, rp)...)
			}
		}
		if item.Type == corev1.LimitTypePod {
			if len(item.Default) > 0 {
				errs = append(errs, field.Forbidden(ip.Child("default"), "may not be specified when `type` is 'Pod'"))
			}
			if len(item.DefaultRequest) > 0 {
				errs = append(errs, field.Forbidden(ip.Child("defaultRequest"), "may not be specified when `type` is 'Pod'"))
			}
		}
		less := func(a, b corev1.ResourceList, aName, bName, path string) {
			for name, lo := range a {
				if hi, ok := b[name]; ok && lo.Cmp(hi) > 0 {
					errs = append(errs, field.Invalid(ip.Child(path).Key(string(name)), lo.String(),
						fmt.Sprintf("%s value %s is greater than %s value %s", aName, lo.String(), bName, hi.String())))
				}
			}
		}
		less(item.Min, item.Max, "min", "max", "min")
		less(item.Min, item.Default, "min", "default", "min")
		less(item.Default, item.Max, "default", "max", "default")
		less(item.DefaultRequest, item.Default, "default request", "default limit", "defaultRequest")
		less(item.Min, item.DefaultRequest, "min", "default request", "min")
		less(item.DefaultRequest, item.Max, "default request", "max", "defaultRequest")
	}
	return errs
}

// ReplicationController

func validateReplicationController(rc, old *corev1.ReplicationController) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	spec := &rc.Spec
	if spec.Replicas != nil {
		errs = append(errs, nonNegative(int64(*spec.Replicas), sp.Child("replicas"))...)
	}
	errs = append(errs, nonNegative(int64(spec.MinReadySeconds), sp.Child("minReadySeconds"))...)
	if len(spec.Selector) == 0 {
		errs = append(errs, field.Required(sp.Child("selector"), ""))
	} else {
		errs = append(errs, validateLabels(spec.Selector, sp.Child("selector"))...)
	}
	if spec.Template == nil {
		return append(errs, field.Required(sp.Child("template"), ""))
	}
	if len(spec.Selector) > 0 && !labels.SelectorFromSet(spec.Selector).Matches(labels.Set(spec.Template.Labels)) {
		errs = append(errs, field.Invalid(sp.Child("template", "metadata", "labels"), spec.Template.Labels, selectorMismatchMsg))
	}
	errs = append(errs, validateWorkloadTemplate(spec.Template, sp.Child("template"), "ReplicationController")...)
	_ = old
	return errs
}

// validateWorkloadTemplate validates the pod template of a long-running
// workload: its pods must restart Always and may not have a deadline.
func validateWorkloadTemplate(t *corev1.PodTemplateSpec, p *field.Path, kind string) field.ErrorList {
	errs := validatePodTemplateSpec(t, p, podOpts{})
	if t == nil {
		return errs
	}
	if t.Spec.RestartPolicy != corev1.RestartPolicyAlways && t.Spec.RestartPolicy != "" {
		errs = append(errs, field.NotSupported(p.Child("spec", "restartPolicy"), t.Spec.RestartPolicy,
			[]corev1.RestartPolicy{corev1.RestartPolicyAlways}))
	}
	if t.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Forbidden(p.Child("spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in "+kind+" is not Supported"))
	}
	return errs
}
