package validation

import (
	// The reference parser accepts a digest only when its hash is linked
	// in; Kubernetes images are pinned by sha256.
	_ "crypto/sha256"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// defaultPod is SetDefaults_Pod plus what the pod create strategy and the
// v1 conversion do.
func defaultPod(pod *corev1.Pod) {
	spec := &pod.Spec
	// Requests default to limits, for Pods only (templates keep what the user
	// wrote, so the pods they stamp out are defaulted here).
	for _, list := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
		for i := range list {
			r := &list[i].Resources
			for name, limit := range r.Limits {
				if _, ok := r.Requests[name]; !ok {
					if r.Requests == nil {
						r.Requests = corev1.ResourceList{}
					}
					r.Requests[name] = limit.DeepCopy()
				}
			}
		}
	}
	if spec.EnableServiceLinks == nil {
		spec.EnableServiceLinks = ptr(corev1.DefaultEnableServiceLinks)
	}
	if spec.HostNetwork {
		// With the host's network the container port is the host port.
		for _, list := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
			for i := range list {
				for j := range list[i].Ports {
					if list[i].Ports[j].HostPort == 0 {
						list[i].Ports[j].HostPort = list[i].Ports[j].ContainerPort
					}
				}
			}
		}
	}
	// Since 1.27 the v1 conversion treats a negative grace period on a Pod as
	// 1 second (templates keep it; their pods get it fixed here).
	if spec.TerminationGracePeriodSeconds != nil && *spec.TerminationGracePeriodSeconds < 0 {
		spec.TerminationGracePeriodSeconds = ptr[int64](1)
	}
	defaultPodSpec(spec, true)
	for i := range spec.EphemeralContainers {
		defaultContainer((*corev1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon))
	}
	// The pod create strategy starts every pod Pending with its QoS class.
	if pod.Status.Phase == "" {
		pod.Status.Phase = corev1.PodPending
	}
	if pod.Status.QOSClass == "" {
		pod.Status.QOSClass = PodQOS(spec)
	}
}

// defaultPodTemplateSpec defaults the pod spec inside a workload.
// restartPolicy is false for Jobs, whose pods must choose OnFailure or Never.
func defaultPodTemplateSpec(t *corev1.PodTemplateSpec, restartPolicy bool) {
	if t == nil {
		return
	}
	defaultPodSpec(&t.Spec, restartPolicy)
}

// defaultPodSpec is SetDefaults_PodSpec and the defaults of everything a pod
// spec contains.
func defaultPodSpec(spec *corev1.PodSpec, restartPolicy bool) {
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = corev1.DNSClusterFirst
	}
	if restartPolicy && spec.RestartPolicy == "" {
		spec.RestartPolicy = corev1.RestartPolicyAlways
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	if spec.TerminationGracePeriodSeconds == nil {
		spec.TerminationGracePeriodSeconds = ptr[int64](corev1.DefaultTerminationGracePeriodSeconds)
	}
	if spec.SchedulerName == "" {
		spec.SchedulerName = corev1.DefaultSchedulerName
	}
	// The v1 conversion keeps the deprecated serviceAccount field in step
	// with serviceAccountName.
	if spec.ServiceAccountName == "" {
		spec.ServiceAccountName = spec.DeprecatedServiceAccount
	}
	spec.DeprecatedServiceAccount = spec.ServiceAccountName
	for i := range spec.Volumes {
		defaultVolume(&spec.Volumes[i])
	}
	for i := range spec.InitContainers {
		defaultContainer(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		defaultContainer(&spec.Containers[i])
	}
	roundUpResources(spec.Overhead)
	if spec.Resources != nil {
		roundUpResources(spec.Resources.Limits)
		roundUpResources(spec.Resources.Requests)
	}
}

// defaultContainer is SetDefaults_Container and the defaults of ports,
// probes, lifecycle handlers and env sources.
func defaultContainer(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = defaultPullPolicy(c.Image)
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		defaultProbe(p)
	}
	if c.Lifecycle != nil {
		for _, h := range []*corev1.LifecycleHandler{c.Lifecycle.PostStart, c.Lifecycle.PreStop} {
			if h != nil {
				defaultHTTPGet(h.HTTPGet)
			}
		}
	}
	for i := range c.Env {
		if vf := c.Env[i].ValueFrom; vf != nil && vf.FieldRef != nil && vf.FieldRef.APIVersion == "" {
			vf.FieldRef.APIVersion = "v1"
		}
	}
	roundUpResources(c.Resources.Limits)
	roundUpResources(c.Resources.Requests)
}

// defaultPullPolicy: Always for ":latest" or an untagged, undigested image,
// otherwise IfNotPresent (also for references that do not parse). It reads
// the image as Kubernetes' defaulting does, with the distribution project's
// reference parser.
func defaultPullPolicy(image string) corev1.PullPolicy {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return corev1.PullIfNotPresent
	}
	if tagged, ok := reference.TagNameOnly(named).(reference.Tagged); ok && tagged.Tag() == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

func defaultProbe(p *corev1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	defaultHTTPGet(p.HTTPGet)
	if p.GRPC != nil && p.GRPC.Service == nil {
		p.GRPC.Service = ptr("")
	}
}

func defaultHTTPGet(h *corev1.HTTPGetAction) {
	if h == nil {
		return
	}
	if h.Path == "" {
		h.Path = "/"
	}
	if h.Scheme == "" {
		h.Scheme = corev1.URISchemeHTTP
	}
}

// defaultVolume is SetDefaults_Volume and the defaults of the volume sources.
func defaultVolume(v *corev1.Volume) {
	vs := &v.VolumeSource
	if len(setFields(vs)) == 0 {
		vs.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
	if s := vs.Secret; s != nil && s.DefaultMode == nil {
		s.DefaultMode = ptr(corev1.SecretVolumeSourceDefaultMode)
	}
	if s := vs.ConfigMap; s != nil && s.DefaultMode == nil {
		s.DefaultMode = ptr(corev1.ConfigMapVolumeSourceDefaultMode)
	}
	if s := vs.DownwardAPI; s != nil {
		if s.DefaultMode == nil {
			s.DefaultMode = ptr(corev1.DownwardAPIVolumeSourceDefaultMode)
		}
		defaultDownwardAPIFiles(s.Items)
	}
	if s := vs.Projected; s != nil {
		if s.DefaultMode == nil {
			s.DefaultMode = ptr(corev1.ProjectedVolumeSourceDefaultMode)
		}
		for i := range s.Sources {
			if t := s.Sources[i].ServiceAccountToken; t != nil && t.ExpirationSeconds == nil {
				t.ExpirationSeconds = ptr[int64](3600)
			}
			if d := s.Sources[i].DownwardAPI; d != nil {
				defaultDownwardAPIFiles(d.Items)
			}
		}
	}
	if s := vs.HostPath; s != nil && s.Type == nil {
		s.Type = ptr(corev1.HostPathUnset)
	}
	if s := vs.ISCSI; s != nil && s.ISCSIInterface == "" {
		s.ISCSIInterface = "default"
	}
	if s := vs.RBD; s != nil {
		defaultRBD(&s.RBDPool, &s.RadosUser, &s.Keyring)
	}
	if s := vs.AzureDisk; s != nil {
		if s.CachingMode == nil {
			s.CachingMode = ptr(corev1.AzureDataDiskCachingReadWrite)
		}
		if s.FSType == nil {
			s.FSType = ptr("ext4")
		}
		if s.ReadOnly == nil {
			s.ReadOnly = ptr(false)
		}
		if s.Kind == nil {
			s.Kind = ptr(corev1.AzureSharedBlobDisk)
		}
	}
	if s := vs.ScaleIO; s != nil {
		if s.StorageMode == "" {
			s.StorageMode = "ThinProvisioned"
		}
		if s.FSType == "" {
			s.FSType = "xfs"
		}
	}
	if s := vs.Ephemeral; s != nil && s.VolumeClaimTemplate != nil {
		defaultPVCSpec(&s.VolumeClaimTemplate.Spec)
	}
}

func defaultRBD(pool, user, keyring *string) {
	if *pool == "" {
		*pool = "rbd"
	}
	if *user == "" {
		*user = "admin"
	}
	if *keyring == "" {
		*keyring = "/etc/ceph/keyring"
	}
}

func defaultDownwardAPIFiles(items []corev1.DownwardAPIVolumeFile) {
	for i := range items {
		if f := items[i].FieldRef; f != nil && f.APIVersion == "" {
			f.APIVersion = "v1"
		}
	}
}

// roundUpResources is SetDefaults_ResourceList: quantities are kept at milli
// precision, so "0.0001" CPU becomes "1m".
func roundUpResources(list corev1.ResourceList) {
	for name, q := range list {
		if saneQuantity(q) {
			q.RoundUp(-3)
			list[name] = q
		}
	}
}

// PodQOS is Kubernetes' GetPodQOS: BestEffort without any CPU or memory
// request or limit, Guaranteed when every container limits both and requests
// equal limits, Burstable otherwise.
func PodQOS(spec *corev1.PodSpec) corev1.PodQOSClass {
	requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
	guaranteed := true
	add := func(into corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
		if !saneQuantity(q) {
			return
		}
		sum := q.DeepCopy()
		if prev, ok := into[name]; ok {
			sum.Add(prev)
		}
		into[name] = sum
	}
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range list {
			for name, q := range c.Resources.Requests {
				if (name == corev1.ResourceCPU || name == corev1.ResourceMemory) && q.Sign() > 0 {
					add(requests, name, q)
				}
			}
			found := 0
			for name, q := range c.Resources.Limits {
				if (name == corev1.ResourceCPU || name == corev1.ResourceMemory) && q.Sign() > 0 {
					found++
					add(limits, name, q)
				}
			}
			if found < 2 {
				guaranteed = false
			}
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	if guaranteed {
		for name, req := range requests {
			if lim, ok := limits[name]; !ok || lim.Cmp(req) != 0 {
				guaranteed = false
				break
			}
		}
	}
	if guaranteed && len(requests) == len(limits) {
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}
