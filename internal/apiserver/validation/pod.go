package validation

import (
	"fmt"
	"math"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// podOpts says where a pod spec sits.
type podOpts struct {
	// template is true inside a workload (Deployment, Job, ...), false for a
	// Pod.
	template bool
	// ownerChecksRestartPolicy is set when the owner (a Job) applies its own
	// restartPolicy rule, so it is not reported twice.
	ownerChecksRestartPolicy bool
}

// validatePod checks a Pod on create (old == nil) or update.
func validatePod(pod, old *corev1.Pod) field.ErrorList {
	specPath := field.NewPath("spec")
	errs := validatePodSpec(&pod.Spec, specPath, podOpts{})
	for i, c := range pod.Spec.Containers {
		// Only pods: templates long used " " as a placeholder image.
		if len(strings.TrimSpace(c.Image)) != len(c.Image) {
			errs = append(errs, field.Invalid(specPath.Child("containers").Index(i).Child("image"), c.Image,
				"must not have leading or trailing whitespace"))
		}
	}
	if old == nil {
		if len(pod.Spec.EphemeralContainers) > 0 {
			errs = append(errs, field.Forbidden(specPath.Child("ephemeralContainers"), "cannot be set on create"))
		}
		return errs
	}
	return append(errs, validatePodUpdate(pod, old)...)
}

// podUpdatable is the list Kubernetes prints when a pod update touches
// anything else.
const podUpdatable = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`," +
	"`spec.tolerations` (only additions to existing tolerations)," +
	"`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"

// validatePodUpdate is ValidatePodUpdate: a running pod's spec is fixed
// except for images, a shorter activeDeadlineSeconds, added tolerations and
// removed scheduling gates.
func validatePodUpdate(pod, old *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	specPath := field.NewPath("spec")
	for _, pair := range []struct {
		name     string
		new, old []corev1.Container
	}{
		{"containers", pod.Spec.Containers, old.Spec.Containers},
		{"initContainers", pod.Spec.InitContainers, old.Spec.InitContainers},
	} {
		if len(pair.new) != len(pair.old) {
			// Nothing else can be compared meaningfully.
			return append(errs, field.Forbidden(specPath.Child(pair.name), "pod updates may not add or remove containers"))
		}
	}

	if ads := pod.Spec.ActiveDeadlineSeconds; ads != nil {
		if *ads < 0 || *ads > math.MaxInt32 {
			return append(errs, field.Invalid(specPath.Child("activeDeadlineSeconds"), *ads, validation.InclusiveRangeError(0, math.MaxInt32)))
		}
		if o := old.Spec.ActiveDeadlineSeconds; o != nil && *o < *ads {
			return append(errs, field.Invalid(specPath.Child("activeDeadlineSeconds"), *ads, "must be less than or equal to previous value"))
		}
	} else if old.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Invalid(specPath.Child("activeDeadlineSeconds"), pod.Spec.ActiveDeadlineSeconds,
			"must not update from a positive integer to nil value"))
	}

	// Tolerations may only be added; a NoExecute toleration may only get a
	// shorter tolerationSeconds.
	errs = append(errs, onlyAddedTolerations(pod.Spec.Tolerations, old.Spec.Tolerations, specPath.Child("tolerations"))...)
	// Scheduling gates may only be removed.
	for i, g := range pod.Spec.SchedulingGates {
		found := false
		for _, og := range old.Spec.SchedulingGates {
			found = found || og.Name == g.Name
		}
		if !found {
			errs = append(errs, field.Forbidden(specPath.Child("schedulingGates").Index(i), "only deletion is allowed, but found new scheduling gate '"+g.Name+"'"))
		}
	}

	if semanticEqual(pod.Spec, old.Spec) {
		return errs
	}
	// Blank out what may change and compare the rest.
	munged := *pod.Spec.DeepCopy()
	for i := range munged.Containers {
		munged.Containers[i].Image = old.Spec.Containers[i].Image
	}
	for i := range munged.InitContainers {
		munged.InitContainers[i].Image = old.Spec.InitContainers[i].Image
	}
	munged.ActiveDeadlineSeconds = old.Spec.ActiveDeadlineSeconds
	munged.SchedulingGates = old.Spec.SchedulingGates
	munged.Tolerations = old.Spec.Tolerations
	if o, n := old.Spec.TerminationGracePeriodSeconds, munged.TerminationGracePeriodSeconds; o != nil && *o < 0 && n != nil && *n == 1 {
		munged.TerminationGracePeriodSeconds = o
	}
	if len(old.Spec.SchedulingGates) > 0 {
		// A gated pod is not scheduled yet, so its node selector may grow.
		munged.NodeSelector = mergeNodeSelector(old.Spec.NodeSelector, munged.NodeSelector)
	}
	if !semanticEqual(munged, old.Spec) {
		diff := specDiff(&old.Spec, &munged)
		errs = append(errs, field.Forbidden(specPath, "pod updates may not change fields other than "+podUpdatable+diff))
	}
	return errs
}

// mergeNodeSelector returns next when it only adds keys to prev, so the
// comparison ignores additions; otherwise next unchanged, so it fails.
func mergeNodeSelector(prev, next map[string]string) map[string]string {
	for k, v := range prev {
		if nv, ok := next[k]; !ok || nv != v {
			return next
		}
	}
	return prev
}

func onlyAddedTolerations(tols, old []corev1.Toleration, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, o := range old {
		found := false
		for _, n := range tols {
			if o.Key == n.Key && o.Operator == n.Operator && o.Value == n.Value && o.Effect == n.Effect {
				oldSecs, newSecs := o.TolerationSeconds, n.TolerationSeconds
				if oldSecs == nil && newSecs == nil || oldSecs != nil && newSecs != nil &&
					(*newSecs == *oldSecs || o.Effect == corev1.TaintEffectNoExecute && *newSecs >= 0 && *newSecs < *oldSecs) {
					found = true
					break
				}
			}
		}
		if !found {
			errs = append(errs, field.Forbidden(p, "existing toleration can not be modified except its tolerationSeconds"))
			break
		}
	}
	return append(errs, validateTolerations(tols, p)...)
}

// specDiff names the top-level fields of a pod spec that differ, which is
// what a user needs from Kubernetes' much longer cmp.Diff output.
func specDiff(old, next *corev1.PodSpec) string {
	var changed []string
	add := func(name string, a, b any) {
		if !semanticEqual(a, b) {
			changed = append(changed, name)
		}
	}
	for i := range next.Containers {
		add(fmt.Sprintf("spec.containers[%d]", i), old.Containers[i], next.Containers[i])
	}
	for i := range next.InitContainers {
		add(fmt.Sprintf("spec.initContainers[%d]", i), old.InitContainers[i], next.InitContainers[i])
	}
	o, n := *old, *next
	o.Containers, n.Containers, o.InitContainers, n.InitContainers = nil, nil, nil, nil
	for _, name := range diffFields(&o, &n) {
		changed = append(changed, "spec."+name)
	}
	if len(changed) == 0 {
		return ""
	}
	return "\n  changed: " + strings.Join(changed, ", ")
}

// validatePodTemplate checks a PodTemplate object.
func validatePodTemplate(t, _ *corev1.PodTemplate) field.ErrorList {
	return validatePodTemplateSpec(&t.Template, field.NewPath("template"), podOpts{template: true})
}

// validatePodTemplateSpec is ValidatePodTemplateSpec: the template's labels
// and annotations, and its pod spec.
func validatePodTemplateSpec(t *corev1.PodTemplateSpec, p *field.Path, o podOpts) field.ErrorList {
	if t == nil {
		return field.ErrorList{field.Required(p, "")}
	}
	o.template = true
	errs := validateLabels(t.Labels, p.Child("labels"))
	errs = append(errs, apimachineryvalidation.ValidateAnnotations(t.Annotations, p.Child("annotations"))...)
	errs = append(errs, validatePodSpec(&t.Spec, p.Child("spec"), o)...)
	if len(t.Spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(p.Child("spec", "ephemeralContainers"), "ephemeral containers not allowed in pod template"))
	}
	return errs
}

// validatePodSpec is ValidatePodSpec, for pods and templates alike.
func validatePodSpec(spec *corev1.PodSpec, p *field.Path, o podOpts) field.ErrorList {
	volumes, errs := validateVolumes(spec.Volumes, p.Child("volumes"))

	if len(spec.Containers) == 0 {
		errs = append(errs, field.Required(p.Child("containers"), ""))
	}
	names := map[string]bool{}
	hostPorts := map[string]bool{}
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if spec.TerminationGracePeriodSeconds != nil {
		grace = *spec.TerminationGracePeriodSeconds
	}
	for i := range spec.InitContainers {
		errs = append(errs, validateContainer(&spec.InitContainers[i], p.Child("initContainers").Index(i), initContainer, volumes, names, grace)...)
	}
	for i := range spec.Containers {
		errs = append(errs, validateContainer(&spec.Containers[i], p.Child("containers").Index(i), regularContainer, volumes, names, grace)...)
	}
	for i := range spec.EphemeralContainers {
		c := (*corev1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon)
		errs = append(errs, validateContainer(c, p.Child("ephemeralContainers").Index(i), ephemeralContainer, volumes, names, grace)...)
	}
	for _, list := range []struct {
		name string
		cs   []corev1.Container
	}{{"initContainers", spec.InitContainers}, {"containers", spec.Containers}} {
		for i, c := range list.cs {
			for j, port := range c.Ports {
				portPath := p.Child(list.name).Index(i).Child("ports").Index(j)
				if spec.HostNetwork && port.HostPort != 0 && port.HostPort != port.ContainerPort {
					errs = append(errs, field.Invalid(portPath.Child("containerPort"), port.ContainerPort,
						"must match `hostPort` when `hostNetwork` is true"))
				}
				if port.HostPort == 0 {
					continue
				}
				// Two containers cannot bind the same host port.
				key := fmt.Sprintf("%s/%s/%d", port.Protocol, port.HostIP, port.HostPort)
				if hostPorts[key] {
					errs = append(errs, field.Duplicate(portPath.Child("hostPort"), key))
				}
				hostPorts[key] = true
			}
		}
	}

	if !o.ownerChecksRestartPolicy {
		errs = append(errs, enum(spec.RestartPolicy, p.Child("restartPolicy"),
			corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever)...)
	}
	errs = append(errs, enum(spec.DNSPolicy, p.Child("dnsPolicy"),
		corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone)...)
	if spec.DNSPolicy == corev1.DNSNone && spec.DNSConfig == nil {
		errs = append(errs, field.Required(p.Child("dnsConfig"), "must provide `dnsConfig` when `dnsPolicy` is None"))
	}
	errs = append(errs, validateDNSConfig(spec.DNSConfig, spec.DNSPolicy, p.Child("dnsConfig"))...)
	errs = append(errs, validateLabels(spec.NodeSelector, p.Child("nodeSelector"))...)
	if spec.ServiceAccountName != "" {
		errs = append(errs, dnsSubdomain(spec.ServiceAccountName, p.Child("serviceAccountName"))...)
	}
	if spec.NodeName != "" {
		errs = append(errs, dnsSubdomain(spec.NodeName, p.Child("nodeName"))...)
	}
	if spec.Hostname != "" {
		errs = append(errs, dnsLabel(spec.Hostname, p.Child("hostname"))...)
	}
	if spec.Subdomain != "" {
		errs = append(errs, dnsLabel(spec.Subdomain, p.Child("subdomain"))...)
	}
	if spec.PriorityClassName != "" {
		errs = append(errs, dnsSubdomain(spec.PriorityClassName, p.Child("priorityClassName"))...)
	}
	if spec.RuntimeClassName != nil {
		errs = append(errs, dnsSubdomain(*spec.RuntimeClassName, p.Child("runtimeClassName"))...)
	}
	if ads := spec.ActiveDeadlineSeconds; ads != nil && (*ads < 1 || *ads > math.MaxInt32) {
		errs = append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), *ads, validation.InclusiveRangeError(1, math.MaxInt32)))
	}
	if !o.template && spec.TerminationGracePeriodSeconds != nil {
		// Templates may hold a negative value (Kubernetes warns); the pods
		// made from them are defaulted to 1.
		errs = append(errs, nonNegative(*spec.TerminationGracePeriodSeconds, p.Child("terminationGracePeriodSeconds"))...)
	}
	errs = append(errs, validateTolerations(spec.Tolerations, p.Child("tolerations"))...)
	for i, h := range spec.HostAliases {
		hp := p.Child("hostAliases").Index(i)
		errs = append(errs, ip(h.IP, hp.Child("ip"))...)
		for j, name := range h.Hostnames {
			errs = append(errs, dnsSubdomain(name, hp.Child("hostnames").Index(j))...)
		}
	}
	errs = append(errs, validateTopologySpread(spec.TopologySpreadConstraints, p.Child("topologySpreadConstraints"))...)
	gates := map[string]bool{}
	for i, g := range spec.SchedulingGates {
		gp := p.Child("schedulingGates").Index(i)
		errs = append(errs, qualifiedName(g.Name, gp.Child("name"))...)
		if gates[g.Name] {
			errs = append(errs, field.Duplicate(gp.Child("name"), g.Name))
		}
		gates[g.Name] = true
	}
	for i, g := range spec.ReadinessGates {
		errs = append(errs, qualifiedName(string(g.ConditionType), p.Child("readinessGates").Index(i).Child("conditionType"))...)
	}
	for name, q := range spec.Overhead {
		errs = append(errs, quantityNonNegative(string(name), q, p.Child("overhead").Key(string(name)))...)
	}
	errs = append(errs, validatePodSecurityContext(spec.SecurityContext, p.Child("securityContext"))...)
	if spec.OS != nil {
		errs = append(errs, enum(spec.OS.Name, p.Child("os", "name"), corev1.Linux, corev1.Windows)...)
	}
	return errs
}

func validatePodSecurityContext(sc *corev1.PodSecurityContext, p *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	var errs field.ErrorList
	errs = append(errs, idCheck(sc.RunAsUser, validation.IsValidUserID, p.Child("runAsUser"))...)
	errs = append(errs, idCheck(sc.RunAsGroup, validation.IsValidGroupID, p.Child("runAsGroup"))...)
	errs = append(errs, idCheck(sc.FSGroup, validation.IsValidGroupID, p.Child("fsGroup"))...)
	for i, g := range sc.SupplementalGroups {
		errs = append(errs, invalidEach(nil, p.Child("supplementalGroups").Index(i), g, validation.IsValidGroupID(g))...)
	}
	if sc.FSGroupChangePolicy != nil {
		errs = append(errs, optionalEnum(*sc.FSGroupChangePolicy, p.Child("fsGroupChangePolicy"),
			corev1.FSGroupChangeOnRootMismatch, corev1.FSGroupChangeAlways)...)
	}
	for i, s := range sc.Sysctls {
		if s.Name == "" {
			errs = append(errs, field.Required(p.Child("sysctls").Index(i).Child("name"), ""))
		}
	}
	return errs
}

func idCheck(v *int64, check func(int64) []string, p *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	return invalidEach(nil, p, *v, check(*v))
}

func validateDNSConfig(c *corev1.PodDNSConfig, policy corev1.DNSPolicy, p *field.Path) field.ErrorList {
	if c == nil {
		return nil
	}
	var errs field.ErrorList
	if len(c.Nameservers) > 3 {
		errs = append(errs, field.Invalid(p.Child("nameservers"), c.Nameservers, "must not have more than 3 nameservers"))
	}
	for i, ns := range c.Nameservers {
		errs = append(errs, ip(ns, p.Child("nameservers").Index(i))...)
	}
	if len(c.Searches) > 32 {
		errs = append(errs, field.Invalid(p.Child("searches"), c.Searches, "must not have more than 32 search paths"))
	}
	for i, s := range c.Searches {
		// A trailing dot marks a fully qualified domain.
		errs = append(errs, dnsSubdomain(strings.TrimSuffix(s, "."), p.Child("searches").Index(i))...)
	}
	for i, opt := range c.Options {
		if opt.Name == "" {
			errs = append(errs, field.Required(p.Child("options").Index(i), "Option.Name must not be empty"))
		}
	}
	if policy == corev1.DNSNone && len(c.Nameservers) == 0 {
		errs = append(errs, field.Required(p.Child("nameservers"), "must provide at least one DNS nameserver when `dnsPolicy` is None"))
	}
	return errs
}

// validateTolerations is ValidateTolerations.
func validateTolerations(tols []corev1.Toleration, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, t := range tols {
		tp := p.Index(i)
		if t.Key != "" {
			errs = append(errs, qualifiedName(t.Key, tp.Child("key"))...)
		}
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			errs = append(errs, field.Invalid(tp.Child("operator"), t.Operator,
				"operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			errs = append(errs, field.Invalid(tp.Child("effect"), t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
		}
		switch t.Operator {
		case corev1.TolerationOpEqual, "":
			if msgs := validation.IsValidLabelValue(t.Value); len(msgs) != 0 {
				errs = append(errs, field.Invalid(tp.Child("operator"), t.Value, strings.Join(msgs, ";")))
			}
		case corev1.TolerationOpExists:
			if t.Value != "" {
				errs = append(errs, field.Invalid(tp.Child("operator"), t.Value, "value must be empty when `operator` is 'Exists'"))
			}
		default:
			errs = append(errs, field.NotSupported(tp.Child("operator"), t.Operator,
				[]corev1.TolerationOperator{corev1.TolerationOpEqual, corev1.TolerationOpExists}))
		}
		errs = append(errs, optionalEnum(t.Effect, tp.Child("effect"),
			corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute)...)
	}
	return errs
}

func validateTopologySpread(cs []corev1.TopologySpreadConstraint, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, c := range cs {
		cp := p.Index(i)
		if c.MaxSkew <= 0 {
			errs = append(errs, field.Invalid(cp.Child("maxSkew"), c.MaxSkew, "must be greater than zero"))
		}
		if c.TopologyKey == "" {
			errs = append(errs, field.Required(cp.Child("topologyKey"), "can not be empty"))
		} else {
			errs = append(errs, qualifiedName(c.TopologyKey, cp.Child("topologyKey"))...)
		}
		errs = append(errs, enum(c.WhenUnsatisfiable, cp.Child("whenUnsatisfiable"),
			corev1.DoNotSchedule, corev1.ScheduleAnyway)...)
		if c.MinDomains != nil {
			if *c.MinDomains <= 0 {
				errs = append(errs, field.Invalid(cp.Child("minDomains"), *c.MinDomains, "must be greater than 0"))
			} else if c.WhenUnsatisfiable != corev1.DoNotSchedule {
				errs = append(errs, field.Invalid(cp.Child("minDomains"), *c.MinDomains,
					"can only use minDomains if whenUnsatisfiable=DoNotSchedule, not "+string(c.WhenUnsatisfiable)))
			}
		}
		errs = append(errs, labelSelector(c.LabelSelector, cp.Child("labelSelector"))...)
		key := c.TopologyKey + "/" + string(c.WhenUnsatisfiable)
		if seen[key] {
			errs = append(errs, field.Duplicate(cp, fmt.Sprintf("{%v, %v}", c.TopologyKey, c.WhenUnsatisfiable)))
		}
		seen[key] = true
	}
	return errs
}

// validateVolumes checks the pod's volumes and returns their sources by name,
// for the volume mounts.
func validateVolumes(vols []corev1.Volume, p *field.Path) (map[string]*corev1.VolumeSource, field.ErrorList) {
	var errs field.ErrorList
	byName := map[string]*corev1.VolumeSource{}
	for i := range vols {
		v := &vols[i]
		vp := p.Index(i)
		errs = append(errs, validateVolumeSource(&v.VolumeSource, vp)...)
		switch {
		case v.Name == "":
			errs = append(errs, field.Required(vp.Child("name"), ""))
		default:
			errs = append(errs, dnsLabel(v.Name, vp.Child("name"))...)
		}
		if _, dup := byName[v.Name]; dup {
			errs = append(errs, field.Duplicate(vp.Child("name"), v.Name))
		} else {
			byName[v.Name] = &v.VolumeSource
		}
	}
	return byName, errs
}

const fileModeMsg = "must be a number between 0 and 0777 (octal), both inclusive"

func fileMode(mode *int32, p *field.Path) field.ErrorList {
	if mode != nil && (*mode < 0 || *mode > 0777) {
		return field.ErrorList{field.Invalid(p, *mode, fileModeMsg)}
	}
	return nil
}

// validateVolumeSource checks that exactly one source is set and the
// commonly used ones are complete.
func validateVolumeSource(vs *corev1.VolumeSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	set := setFields(vs)
	if len(set) == 0 {
		return field.ErrorList{field.Required(p, "must specify a volume type")}
	}
	for _, extra := range set[1:] {
		errs = append(errs, field.Forbidden(p.Child(extra), "may not specify more than 1 volume type"))
	}
	if s := vs.HostPath; s != nil {
		hp := p.Child("hostPath")
		if s.Path == "" {
			errs = append(errs, field.Required(hp.Child("path"), ""))
		}
		errs = append(errs, noBacksteps(s.Path, hp.Child("path"))...)
		if s.Type != nil {
			errs = append(errs, optionalEnum(*s.Type, hp.Child("type"), corev1.HostPathDirectoryOrCreate,
				corev1.HostPathDirectory, corev1.HostPathFileOrCreate, corev1.HostPathFile, corev1.HostPathSocket,
				corev1.HostPathCharDev, corev1.HostPathBlockDev)...)
		}
	}
	if s := vs.EmptyDir; s != nil && s.SizeLimit != nil && s.SizeLimit.Sign() < 0 {
		errs = append(errs, field.Forbidden(p.Child("emptyDir", "sizeLimit"), "SizeLimit field must be a valid resource quantity"))
	}
	if s := vs.Secret; s != nil {
		sp := p.Child("secret")
		if s.SecretName == "" {
			errs = append(errs, field.Required(sp.Child("secretName"), ""))
		} else {
			errs = append(errs, dnsSubdomain(s.SecretName, sp.Child("secretName"))...)
		}
		errs = append(errs, fileMode(s.DefaultMode, sp.Child("defaultMode"))...)
		errs = append(errs, validateKeyToPaths(s.Items, sp.Child("items"))...)
	}
	if s := vs.ConfigMap; s != nil {
		cp := p.Child("configMap")
		if s.Name == "" {
			errs = append(errs, field.Required(cp.Child("name"), ""))
		} else {
			errs = append(errs, dnsSubdomain(s.Name, cp.Child("name"))...)
		}
		errs = append(errs, fileMode(s.DefaultMode, cp.Child("defaultMode"))...)
		errs = append(errs, validateKeyToPaths(s.Items, cp.Child("items"))...)
	}
	if s := vs.PersistentVolumeClaim; s != nil && s.ClaimName == "" {
		errs = append(errs, field.Required(p.Child("persistentVolumeClaim", "claimName"), ""))
	}
	if s := vs.NFS; s != nil {
		np := p.Child("nfs")
		if s.Server == "" {
			errs = append(errs, field.Required(np.Child("server"), ""))
		}
		if s.Path == "" {
			errs = append(errs, field.Required(np.Child("path"), ""))
		} else if !strings.HasPrefix(s.Path, "/") {
			errs = append(errs, field.Invalid(np.Child("path"), s.Path, "must be an absolute path"))
		}
	}
	if s := vs.DownwardAPI; s != nil {
		dp := p.Child("downwardAPI")
		errs = append(errs, fileMode(s.DefaultMode, dp.Child("defaultMode"))...)
		errs = append(errs, validateDownwardAPIFiles(s.Items, dp.Child("items"))...)
	}
	if s := vs.Projected; s != nil {
		errs = append(errs, validateProjected(s, p.Child("projected"))...)
	}
	if s := vs.CSI; s != nil && s.Driver == "" {
		errs = append(errs, field.Required(p.Child("csi", "driver"), ""))
	}
	if s := vs.Ephemeral; s != nil {
		ep := p.Child("ephemeral", "volumeClaimTemplate")
		if s.VolumeClaimTemplate == nil {
			errs = append(errs, field.Required(ep, ""))
		} else {
			errs = append(errs, validatePVCSpec(&s.VolumeClaimTemplate.Spec, ep.Child("spec"))...)
		}
	}
	return errs
}

// noBacksteps rejects ".." path elements, which would escape the volume.
func noBacksteps(v string, p *field.Path) field.ErrorList {
	for _, part := range strings.Split(strings.ReplaceAll(v, `\`, "/"), "/") {
		if part == ".." {
			return field.ErrorList{field.Invalid(p, v, "must not contain '..'")}
		}
	}
	return nil
}

func validateKeyToPaths(items []corev1.KeyToPath, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, kp := range items {
		ip := p.Index(i)
		if kp.Key == "" {
			errs = append(errs, field.Required(ip.Child("key"), ""))
		}
		if kp.Path == "" {
			errs = append(errs, field.Required(ip.Child("path"), ""))
		}
		errs = append(errs, relativePath(kp.Path, ip.Child("path"))...)
		if strings.HasPrefix(kp.Path, "..") {
			errs = append(errs, field.Invalid(ip.Child("path"), kp.Path, "must not start with '..'"))
		}
		errs = append(errs, fileMode(kp.Mode, ip.Child("mode"))...)
	}
	return errs
}

func validateDownwardAPIFiles(items []corev1.DownwardAPIVolumeFile, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, f := range items {
		fp := p.Index(i)
		if f.Path == "" {
			errs = append(errs, field.Required(fp.Child("path"), ""))
		}
		errs = append(errs, relativePath(f.Path, fp.Child("path"))...)
		errs = append(errs, fileMode(f.Mode, fp.Child("mode"))...)
		switch {
		case f.FieldRef != nil && f.ResourceFieldRef != nil:
			errs = append(errs, field.Invalid(fp, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
		case f.FieldRef != nil:
			errs = append(errs, validateFieldRef(f.FieldRef, volumeFieldPaths, fp.Child("fieldRef"))...)
		case f.ResourceFieldRef != nil:
			errs = append(errs, validateResourceFieldRef(f.ResourceFieldRef, true, fp.Child("resourceFieldRef"))...)
		default:
			errs = append(errs, field.Required(fp, "one of fieldRef and resourceFieldRef is required"))
		}
	}
	return errs
}

func validateProjected(s *corev1.ProjectedVolumeSource, p *field.Path) field.ErrorList {
	errs := fileMode(s.DefaultMode, p.Child("defaultMode"))
	paths := map[string]bool{}
	addPath := func(path string, pp *field.Path) {
		if paths[path] {
			errs = append(errs, field.Invalid(pp, path, "conflicting duplicate paths"))
		}
		paths[path] = true
	}
	for i := range s.Sources {
		src := &s.Sources[i]
		sp := p.Child("sources").Index(i)
		set := setFields(src)
		if len(set) == 0 {
			errs = append(errs, field.Required(sp, "must specify exactly 1 projection type"))
		}
		for _, extra := range set[min(1, len(set)):] {
			errs = append(errs, field.Forbidden(sp.Child(extra), "may not specify more than 1 volume type per source"))
		}
		if c := src.Secret; c != nil {
			errs = append(errs, validateKeyToPaths(c.Items, sp.Child("secret", "items"))...)
			for j, it := range c.Items {
				addPath(it.Path, sp.Child("secret", "items").Index(j).Child("path"))
			}
		}
		if c := src.ConfigMap; c != nil {
			errs = append(errs, validateKeyToPaths(c.Items, sp.Child("configMap", "items"))...)
			for j, it := range c.Items {
				addPath(it.Path, sp.Child("configMap", "items").Index(j).Child("path"))
			}
		}
		if c := src.DownwardAPI; c != nil {
			errs = append(errs, validateDownwardAPIFiles(c.Items, sp.Child("downwardAPI", "items"))...)
			for j, it := range c.Items {
				addPath(it.Path, sp.Child("downwardAPI", "items").Index(j).Child("path"))
			}
		}
		if t := src.ServiceAccountToken; t != nil {
			tp := sp.Child("serviceAccountToken")
			if t.Path == "" {
				errs = append(errs, field.Required(tp.Child("path"), ""))
			}
			errs = append(errs, relativePath(t.Path, tp.Child("path"))...)
			if e := t.ExpirationSeconds; e != nil {
				if *e < 600 {
					errs = append(errs, field.Invalid(tp.Child("expirationSeconds"), *e, "may not specify a duration less than 10 minutes"))
				} else if *e > 1<<32 {
					errs = append(errs, field.Invalid(tp.Child("expirationSeconds"), *e, "may not specify a duration larger than 2^32 seconds"))
				}
			}
			addPath(t.Path, tp.Child("path"))
		}
	}
	return errs
}

type containerKind int

const (
	regularContainer containerKind = iota
	initContainer
	ephemeralContainer
)

// validateContainer checks one container. names collects the container names
// of the whole pod, which must be unique across all three lists.
func validateContainer(c *corev1.Container, p *field.Path, kind containerKind, volumes map[string]*corev1.VolumeSource, names map[string]bool, grace int64) field.ErrorList {
	var errs field.ErrorList
	if c.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	} else {
		errs = append(errs, dnsLabel(c.Name, p.Child("name"))...)
		if names[c.Name] {
			errs = append(errs, field.Duplicate(p.Child("name"), c.Name))
		}
		names[c.Name] = true
	}
	if c.Image == "" {
		errs = append(errs, field.Required(p.Child("image"), ""))
	}
	errs = append(errs, enum(c.ImagePullPolicy, p.Child("imagePullPolicy"),
		corev1.PullAlways, corev1.PullNever, corev1.PullIfNotPresent)...)
	errs = append(errs, enum(c.TerminationMessagePolicy, p.Child("terminationMessagePolicy"),
		corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError)...)
	errs = append(errs, validateContainerPorts(c.Ports, p.Child("ports"))...)
	errs = append(errs, validateEnv(c.Env, p.Child("env"))...)
	errs = append(errs, validateEnvFrom(c.EnvFrom, p.Child("envFrom"))...)
	errs = append(errs, validateVolumeMounts(c, volumes, p)...)
	errs = append(errs, validateResources(&c.Resources, p.Child("resources"))...)
	errs = append(errs, validateContainerSecurityContext(c.SecurityContext, p.Child("securityContext"))...)

	sidecar := false
	switch kind {
	case regularContainer:
		if c.RestartPolicy != nil {
			errs = append(errs, field.Forbidden(p.Child("restartPolicy"), "may not be set for non-init containers"))
		}
	case initContainer:
		if c.RestartPolicy != nil {
			errs = append(errs, enum(*c.RestartPolicy, p.Child("restartPolicy"), corev1.ContainerRestartPolicyAlways)...)
			sidecar = *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		}
	case ephemeralContainer:
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"ports", len(c.Ports) > 0}, {"livenessProbe", c.LivenessProbe != nil},
			{"readinessProbe", c.ReadinessProbe != nil}, {"startupProbe", c.StartupProbe != nil},
			{"lifecycle", c.Lifecycle != nil}, {"restartPolicy", c.RestartPolicy != nil},
		} {
			if f.set {
				errs = append(errs, field.Forbidden(p.Child(f.name), "cannot be set for an Ephemeral Container"))
			}
		}
		return errs
	}

	if kind == initContainer && !sidecar {
		// Plain init containers run to completion; probes and hooks make no
		// sense for them.
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"lifecycle", c.Lifecycle != nil}, {"livenessProbe", c.LivenessProbe != nil},
			{"readinessProbe", c.ReadinessProbe != nil}, {"startupProbe", c.StartupProbe != nil},
		} {
			if f.set {
				errs = append(errs, field.Forbidden(p.Child(f.name), "may not be set for init containers without restartPolicy=Always"))
			}
		}
		return errs
	}
	errs = append(errs, validateProbe(c.LivenessProbe, grace, p.Child("livenessProbe"))...)
	errs = append(errs, validateProbe(c.ReadinessProbe, grace, p.Child("readinessProbe"))...)
	errs = append(errs, validateProbe(c.StartupProbe, grace, p.Child("startupProbe"))...)
	for _, pr := range []struct {
		name  string
		probe *corev1.Probe
	}{{"livenessProbe", c.LivenessProbe}, {"startupProbe", c.StartupProbe}} {
		if pr.probe != nil && pr.probe.SuccessThreshold != 1 {
			errs = append(errs, field.Invalid(p.Child(pr.name, "successThreshold"), pr.probe.SuccessThreshold, "must be 1"))
		}
	}
	if c.ReadinessProbe != nil && c.ReadinessProbe.TerminationGracePeriodSeconds != nil {
		errs = append(errs, field.Invalid(p.Child("readinessProbe", "terminationGracePeriodSeconds"),
			*c.ReadinessProbe.TerminationGracePeriodSeconds, "must not be set for readinessProbes"))
	}
	if l := c.Lifecycle; l != nil {
		errs = append(errs, validateHandler(l.PostStart, grace, p.Child("lifecycle", "postStart"))...)
		errs = append(errs, validateHandler(l.PreStop, grace, p.Child("lifecycle", "preStop"))...)
	}
	return errs
}

func validateContainerSecurityContext(sc *corev1.SecurityContext, p *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	var errs field.ErrorList
	errs = append(errs, idCheck(sc.RunAsUser, validation.IsValidUserID, p.Child("runAsUser"))...)
	errs = append(errs, idCheck(sc.RunAsGroup, validation.IsValidGroupID, p.Child("runAsGroup"))...)
	if sc.Privileged != nil && *sc.Privileged && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		errs = append(errs, field.Invalid(p, sc, "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
	}
	if sc.ProcMount != nil {
		errs = append(errs, optionalEnum(*sc.ProcMount, p.Child("procMount"), corev1.DefaultProcMount, corev1.UnmaskedProcMount)...)
	}
	return errs
}

// validateContainerPorts is validateContainerPorts: names unique per
// container and IANA_SVC_NAMEs, numbers in range, a known protocol.
func validateContainerPorts(ports []corev1.ContainerPort, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := map[string]bool{}
	for i, port := range ports {
		pp := p.Index(i)
		if port.Name != "" {
			if msgs := validation.IsValidPortName(port.Name); len(msgs) != 0 {
				errs = invalidEach(errs, pp.Child("name"), port.Name, msgs)
			} else if names[port.Name] {
				errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
			} else {
				names[port.Name] = true
			}
		}
		if port.ContainerPort == 0 {
			errs = append(errs, field.Required(pp.Child("containerPort"), ""))
		} else {
			errs = append(errs, portNum(port.ContainerPort, pp.Child("containerPort"))...)
		}
		if port.HostPort != 0 {
			errs = append(errs, portNum(port.HostPort, pp.Child("hostPort"))...)
		}
		errs = append(errs, enum(port.Protocol, pp.Child("protocol"), supportedProtocols...)...)
		if port.HostIP != "" {
			errs = append(errs, ip(port.HostIP, pp.Child("hostIP"))...)
		}
	}
	return errs
}

var supportedProtocols = []corev1.Protocol{corev1.ProtocolSCTP, corev1.ProtocolTCP, corev1.ProtocolUDP}

// Kubernetes 1.32 turns RelaxedEnvironmentVariableValidation on by default,
// so variable names may be any printable ASCII but '='.
func envVarName(name string, p *field.Path) field.ErrorList {
	return invalidEach(nil, p, name, validation.IsRelaxedEnvVarName(name))
}

// validateEnv is ValidateEnv.
func validateEnv(env []corev1.EnvVar, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ev := range env {
		ep := p.Index(i)
		if ev.Name == "" {
			errs = append(errs, field.Required(ep.Child("name"), ""))
		} else {
			errs = append(errs, envVarName(ev.Name, ep.Child("name"))...)
		}
		if ev.ValueFrom == nil {
			continue
		}
		vp := ep.Child("valueFrom")
		vf := ev.ValueFrom
		switch n := len(setFields(vf)); {
		case n == 0:
			errs = append(errs, field.Invalid(vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
		case n > 1:
			errs = append(errs, field.Invalid(vp, "", "may not have more than one field specified at a time"))
		}
		if ev.Value != "" {
			errs = append(errs, field.Invalid(vp, "", "may not be specified when `value` is not empty"))
		}
		if vf.FieldRef != nil {
			errs = append(errs, validateFieldRef(vf.FieldRef, envFieldPaths, vp.Child("fieldRef"))...)
		}
		if vf.ResourceFieldRef != nil {
			errs = append(errs, validateResourceFieldRef(vf.ResourceFieldRef, false, vp.Child("resourceFieldRef"))...)
		}
		if s := vf.ConfigMapKeyRef; s != nil {
			errs = append(errs, validateKeySelector(s.Name, s.Key, vp.Child("configMapKeyRef"))...)
		}
		if s := vf.SecretKeyRef; s != nil {
			errs = append(errs, validateKeySelector(s.Name, s.Key, vp.Child("secretKeyRef"))...)
		}
	}
	return errs
}

func validateKeySelector(name, key string, p *field.Path) field.ErrorList {
	errs := invalidEach(nil, p.Child("name"), name, validation.IsDNS1123Subdomain(name))
	if key == "" {
		return append(errs, field.Required(p.Child("key"), ""))
	}
	return invalidEach(errs, p.Child("key"), key, validation.IsConfigMapKey(key))
}

func validateEnvFrom(from []corev1.EnvFromSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ef := range from {
		ep := p.Index(i)
		if ef.Prefix != "" {
			errs = append(errs, envVarName(ef.Prefix, ep.Child("prefix"))...)
		}
		switch n := len(setFields(&ef)); {
		case n == 0:
			errs = append(errs, field.Invalid(p, "", "must specify one of: `configMapRef` or `secretRef`"))
		case n > 1:
			errs = append(errs, field.Invalid(p, "", "may not have more than one field specified at a time"))
		}
		if ef.ConfigMapRef != nil {
			errs = append(errs, requiredName(ef.ConfigMapRef.Name, ep.Child("configMapRef", "name"), dnsSubdomain)...)
		}
		if ef.SecretRef != nil {
			errs = append(errs, requiredName(ef.SecretRef.Name, ep.Child("secretRef", "name"), dnsSubdomain)...)
		}
	}
	return errs
}

// The field paths the downward API can expose, in env vars and in volumes.
var (
	envFieldPaths = []string{"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
		"spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"}
	volumeFieldPaths = []string{"metadata.annotations", "metadata.labels", "metadata.name",
		"metadata.namespace", "metadata.uid"}
)

// subscripted matches metadata.labels['key'] and metadata.annotations['key'].
var subscripted = regexp.MustCompile(`^(metadata\.(?:labels|annotations))\['(.*)'\]$`)

func validateFieldRef(fs *corev1.ObjectFieldSelector, valid []string, p *field.Path) field.ErrorList {
	switch {
	case fs.APIVersion == "":
		return field.ErrorList{field.Required(p.Child("apiVersion"), "")}
	case fs.FieldPath == "":
		return field.ErrorList{field.Required(p.Child("fieldPath"), "")}
	case fs.APIVersion != "v1":
		return field.ErrorList{field.Invalid(p.Child("fieldPath"), fs.FieldPath,
			"error converting fieldPath: unsupported pod version: "+fs.APIVersion)}
	}
	if m := subscripted.FindStringSubmatch(fs.FieldPath); m != nil {
		key := m[2]
		if m[1] == "metadata.annotations" {
			key = strings.ToLower(key)
		}
		return qualifiedName(key, p.Child("fieldPath"))
	}
	for _, v := range valid {
		if fs.FieldPath == v {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(p.Child("fieldPath"), fs.FieldPath, valid)}
}

var resourceFieldRefs = []string{"limits.cpu", "limits.ephemeral-storage", "limits.memory",
	"requests.cpu", "requests.ephemeral-storage", "requests.memory"}

func validateResourceFieldRef(rs *corev1.ResourceFieldSelector, inVolume bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if inVolume && rs.ContainerName == "" {
		errs = append(errs, field.Required(p.Child("containerName"), ""))
	}
	switch {
	case rs.Resource == "":
		errs = append(errs, field.Required(p.Child("resource"), ""))
	case strings.HasPrefix(rs.Resource, "limits.hugepages-"), strings.HasPrefix(rs.Resource, "requests.hugepages-"):
	default:
		errs = append(errs, optionalEnum(rs.Resource, p.Child("resource"), resourceFieldRefs...)...)
	}
	return errs
}

// validateVolumeMounts is ValidateVolumeMounts plus the device checks.
func validateVolumeMounts(c *corev1.Container, volumes map[string]*corev1.VolumeSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	mountPoints := map[string]bool{}
	devices := map[string]string{} // name -> path
	for i, d := range c.VolumeDevices {
		dp := p.Child("volumeDevices").Index(i)
		if d.Name == "" {
			errs = append(errs, field.Required(dp.Child("name"), ""))
		} else if _, ok := volumes[d.Name]; !ok {
			errs = append(errs, field.NotFound(dp.Child("name"), d.Name))
		}
		if d.DevicePath == "" {
			errs = append(errs, field.Required(dp.Child("devicePath"), ""))
		}
		devices[d.Name] = d.DevicePath
	}
	for i, m := range c.VolumeMounts {
		mp := p.Child("volumeMounts").Index(i)
		if m.Name == "" {
			errs = append(errs, field.Required(mp.Child("name"), ""))
		}
		if _, ok := volumes[m.Name]; !ok {
			errs = append(errs, field.NotFound(mp.Child("name"), m.Name))
		}
		if m.MountPath == "" {
			errs = append(errs, field.Required(mp.Child("mountPath"), ""))
		}
		if mountPoints[m.MountPath] {
			errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must be unique"))
		}
		mountPoints[m.MountPath] = true
		if _, ok := devices[m.Name]; ok && m.Name != "" {
			errs = append(errs, field.Invalid(mp.Child("name"), m.Name, "must not already exist in volumeDevices"))
		}
		for _, devPath := range devices {
			if devPath == m.MountPath && m.MountPath != "" {
				errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must not already exist as a path in volumeDevices"))
			}
		}
		if m.SubPath != "" {
			errs = append(errs, relativePath(m.SubPath, mp.Child("subPath"))...)
		}
		if m.SubPathExpr != "" {
			if m.SubPath != "" {
				errs = append(errs, field.Invalid(mp.Child("subPathExpr"), m.SubPathExpr, "subPathExpr and subPath are mutually exclusive"))
			}
			errs = append(errs, relativePath(m.SubPathExpr, mp.Child("subPathExpr"))...)
		}
		if m.MountPropagation != nil {
			errs = append(errs, enum(*m.MountPropagation, mp.Child("mountPropagation"),
				corev1.MountPropagationNone, corev1.MountPropagationHostToContainer, corev1.MountPropagationBidirectional)...)
			if *m.MountPropagation == corev1.MountPropagationBidirectional &&
				(c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged) {
				errs = append(errs, field.Forbidden(mp.Child("mountPropagation"), "Bidirectional mount propagation is available only to privileged containers"))
			}
		}
		if m.RecursiveReadOnly != nil {
			rro := *m.RecursiveReadOnly
			errs = append(errs, enum(rro, mp.Child("recursiveReadOnly"),
				corev1.RecursiveReadOnlyDisabled, corev1.RecursiveReadOnlyIfPossible, corev1.RecursiveReadOnlyEnabled)...)
			if rro != corev1.RecursiveReadOnlyDisabled && !m.ReadOnly {
				errs = append(errs, field.Forbidden(mp.Child("recursiveReadOnly"), "may only be specified when readOnly is true"))
			}
		}
	}
	return errs
}

// validateProbe is validateProbe: exactly one handler and non-negative
// timings.
func validateProbe(probe *corev1.Probe, grace int64, p *field.Path) field.ErrorList {
	if probe == nil {
		return nil
	}
	h := &corev1.LifecycleHandler{Exec: probe.Exec, HTTPGet: probe.HTTPGet, TCPSocket: probe.TCPSocket}
	errs := validateHandlerCommon(setFields(&probe.ProbeHandler), h, grace, p)
	if g := probe.GRPC; g != nil {
		errs = append(errs, portNum(g.Port, p.Child("grpc", "port"))...)
	}
	errs = append(errs, nonNegative(int64(probe.InitialDelaySeconds), p.Child("initialDelaySeconds"))...)
	errs = append(errs, nonNegative(int64(probe.TimeoutSeconds), p.Child("timeoutSeconds"))...)
	errs = append(errs, nonNegative(int64(probe.PeriodSeconds), p.Child("periodSeconds"))...)
	errs = append(errs, nonNegative(int64(probe.SuccessThreshold), p.Child("successThreshold"))...)
	errs = append(errs, nonNegative(int64(probe.FailureThreshold), p.Child("failureThreshold"))...)
	if t := probe.TerminationGracePeriodSeconds; t != nil && *t <= 0 {
		errs = append(errs, field.Invalid(p.Child("terminationGracePeriodSeconds"), *t, "must be greater than 0"))
	}
	return errs
}

// validateHandler checks a lifecycle hook.
func validateHandler(h *corev1.LifecycleHandler, grace int64, p *field.Path) field.ErrorList {
	if h == nil {
		return nil
	}
	errs := validateHandlerCommon(setFields(h), h, grace, p)
	if s := h.Sleep; s != nil && (s.Seconds < 0 || s.Seconds > grace) {
		errs = append(errs, field.Invalid(p.Child("sleep", "seconds"), s.Seconds,
			fmt.Sprintf("must be non-negative and less than terminationGracePeriodSeconds (%d)", grace)))
	}
	return errs
}

// validateHandlerCommon reports the number of handlers set and checks the
// exec, httpGet and tcpSocket actions.
func validateHandlerCommon(set []string, h *corev1.LifecycleHandler, _ int64, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(set) == 0 {
		errs = append(errs, field.Required(p, "must specify a handler type"))
	}
	for i := 1; i < len(set); i++ {
		errs = append(errs, field.Forbidden(p.Child(set[i]), "may not specify more than 1 handler type"))
	}
	if e := h.Exec; e != nil && len(e.Command) == 0 {
		errs = append(errs, field.Required(p.Child("exec", "command"), ""))
	}
	if g := h.HTTPGet; g != nil {
		gp := p.Child("httpGet")
		if g.Path == "" {
			errs = append(errs, field.Required(gp.Child("path"), ""))
		}
		errs = append(errs, portNumOrName(g.Port, gp.Child("port"))...)
		errs = append(errs, optionalEnum(g.Scheme, gp.Child("scheme"), corev1.URISchemeHTTP, corev1.URISchemeHTTPS)...)
		for i, hdr := range g.HTTPHeaders {
			errs = append(errs, invalidEach(nil, gp.Child("httpHeaders").Index(i).Child("name"), hdr.Name, validation.IsHTTPHeaderName(hdr.Name))...)
		}
	}
	if t := h.TCPSocket; t != nil {
		errs = append(errs, portNumOrName(t.Port, p.Child("tcpSocket", "port"))...)
	}
	return errs
}

// Resource names.

func isHugePages(name string) bool { return strings.HasPrefix(name, corev1.ResourceHugePagesPrefix) }

// isNativeResource: no domain, or a kubernetes.io domain.
func isNativeResource(name string) bool {
	return !strings.Contains(name, "/") || strings.Contains(name, corev1.ResourceDefaultNamespacePrefix)
}

// isExtendedResource: a domain-prefixed name outside kubernetes.io, e.g.
// nvidia.com/gpu.
func isExtendedResource(name string) bool {
	if isNativeResource(name) || strings.HasPrefix(name, corev1.DefaultResourceRequestsPrefix) {
		return false
	}
	return len(validation.IsQualifiedName(corev1.DefaultResourceRequestsPrefix+name)) == 0
}

// overcommitAllowed: requests may be below limits (not for hugepages or
// extended resources).
func overcommitAllowed(name string) bool { return isNativeResource(name) && !isHugePages(name) }

// integerResources are counted in whole units.
var integerResources = map[string]bool{
	"pods": true, "services": true, "replicationcontrollers": true, "resourcequotas": true, "secrets": true,
	"configmaps": true, "persistentvolumeclaims": true, "services.nodeports": true, "services.loadbalancers": true,
}

func isIntegerResource(name string) bool { return integerResources[name] || isExtendedResource(name) }

var standardContainerResources = map[string]bool{"cpu": true, "memory": true, "ephemeral-storage": true}

// validateResources is ValidateResourceRequirements for a container.
func validateResources(r *corev1.ResourceRequirements, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	limPath, reqPath := p.Child("limits"), p.Child("requests")
	cpuOrMemory, hugePages := false, false
	for name, q := range r.Limits {
		n := string(name)
		errs = append(errs, validateContainerResourceName(n, limPath.Key(n))...)
		errs = append(errs, quantityNonNegative(n, q, limPath.Key(n))...)
		cpuOrMemory = cpuOrMemory || name == corev1.ResourceCPU || name == corev1.ResourceMemory
		hugePages = hugePages || isHugePages(n)
	}
	for name, q := range r.Requests {
		n := string(name)
		errs = append(errs, validateContainerResourceName(n, reqPath.Key(n))...)
		errs = append(errs, quantityNonNegative(n, q, reqPath.Key(n))...)
		if limit, ok := r.Limits[name]; ok {
			if q.Cmp(limit) != 0 && !overcommitAllowed(n) {
				errs = append(errs, field.Invalid(reqPath, q.String(), fmt.Sprintf("must be equal to %s limit of %s", n, limit.String())))
			} else if q.Cmp(limit) > 0 {
				errs = append(errs, field.Invalid(reqPath, q.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", n, limit.String())))
			}
		} else if !overcommitAllowed(n) {
			errs = append(errs, field.Required(limPath, "Limit must be set for non overcommitable resources"))
		}
		cpuOrMemory = cpuOrMemory || name == corev1.ResourceCPU || name == corev1.ResourceMemory
		hugePages = hugePages || isHugePages(n)
	}
	if hugePages && !cpuOrMemory {
		errs = append(errs, field.Forbidden(p, "HugePages require cpu or memory"))
	}
	return errs
}

func validateContainerResourceName(name string, p *field.Path) field.ErrorList {
	errs := qualifiedName(name, p)
	if len(errs) != 0 {
		return errs
	}
	if !strings.Contains(name, "/") {
		if !standardContainerResources[name] && !isHugePages(name) {
			errs = append(errs, field.Invalid(p, name, "must be a standard resource for containers"))
		}
	} else if !isNativeResource(name) && !isExtendedResource(name) {
		errs = append(errs, field.Invalid(p, name, "doesn't follow extended resource name standard"))
	}
	return errs
}

// standardResources are the names that may appear without a domain in quotas,
// limit ranges and node capacity.
var standardResources = map[string]bool{
	"cpu": true, "memory": true, "ephemeral-storage": true, "storage": true,
	"requests.cpu": true, "requests.memory": true, "requests.ephemeral-storage": true, "requests.storage": true,
	"limits.cpu": true, "limits.memory": true, "limits.ephemeral-storage": true,
	"pods": true, "services": true, "replicationcontrollers": true, "resourcequotas": true, "secrets": true,
	"configmaps": true, "persistentvolumeclaims": true, "services.nodeports": true, "services.loadbalancers": true,
}

// validateResourceName is validateResourceName: a qualified name, standard
// when it has no domain.
func validateResourceName(name string, p *field.Path) field.ErrorList {
	errs := qualifiedName(name, p)
	if len(errs) != 0 {
		return errs
	}
	if !strings.Contains(name, "/") && !standardResources[name] && !isHugePages(name) &&
		!strings.HasPrefix(name, "requests.hugepages-") && !strings.HasPrefix(name, "limits.hugepages-") &&
		!strings.HasPrefix(name, "count/") {
		errs = append(errs, field.Invalid(p, name, "must be a standard resource type or fully qualified"))
	}
	return errs
}
