package validation

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

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
			{"resources", len(c.Resources.Limits)+len(c.Resources.Requests)+len(c.Resources.Claims) > 0},
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
