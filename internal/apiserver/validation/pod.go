package validation

import (
	"fmt"
	"math"
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

// ValidateEphemeralContainersUpdate is ValidatePodEphemeralContainersUpdate:
// a pod changed through its ephemeralcontainers subresource may gain
// ephemeral containers (each valid, with a name unique in the pod, and a
// targetContainerName naming one of its containers) but not lose or change
// one: an ephemeral container runs once and stays in the spec.
func ValidateEphemeralContainersUpdate(pod, old *corev1.Pod) field.ErrorList {
	specPath := field.NewPath("spec")
	p := specPath.Child("ephemeralContainers")
	errs := validatePodSpec(&pod.Spec, specPath, podOpts{})
	byName := map[string]*corev1.EphemeralContainer{}
	for i := range pod.Spec.EphemeralContainers {
		byName[pod.Spec.EphemeralContainers[i].Name] = &pod.Spec.EphemeralContainers[i]
	}
	for i, oc := range old.Spec.EphemeralContainers {
		nc, ok := byName[oc.Name]
		switch {
		case !ok:
			errs = append(errs, field.Forbidden(p, fmt.Sprintf("existing ephemeral containers %q may not be removed", oc.Name)))
		case !semanticEqual(oc, *nc):
			errs = append(errs, field.Forbidden(p.Index(i), fmt.Sprintf("existing ephemeral containers %q may not be changed", oc.Name)))
		}
	}
	for i, ec := range pod.Spec.EphemeralContainers {
		if ec.TargetContainerName == "" {
			continue
		}
		found := false
		for _, c := range append(append([]corev1.Container{}, pod.Spec.Containers...), pod.Spec.InitContainers...) {
			found = found || c.Name == ec.TargetContainerName
		}
		if !found {
			errs = append(errs, field.NotFound(p.Index(i).Child("targetContainerName"), ec.TargetContainerName))
		}
	}
	return errs
}
