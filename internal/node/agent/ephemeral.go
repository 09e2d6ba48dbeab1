package agent

import (
	corev1 "k8s.io/api/core/v1"
)

// Ephemeral containers (kubectl debug): added to a running pod through
// pods/ephemeralcontainers, started once as soon as the pod's containers
// run, never restarted, and reported in status.ephemeralContainerStatuses.
//
// A Wasm module shares nothing with another by itself (no process
// namespace, no /proc/1/root to reach a target's files through), so an
// ephemeral container naming a targetContainerName gets what kubectl debug
// --target means to reach: the target's volume mounts and environment (its
// own env after the target's, so its own wins), beside its own mounts. Every
// ephemeral container has the pod's IP, as every container of the pod.

// addEphemeralLocked adds a container for ec unless the worker has one of
// that name; it returns the new one or nil. Called with w.mu held (or
// before the worker runs).
func (w *podWorker) addEphemeralLocked(pod *corev1.Pod, ec *corev1.EphemeralContainer) *container {
	for _, c := range w.ephemerals {
		if c.spec.Name == ec.Name {
			return nil
		}
	}
	prev := previousStatus(pod.Status.EphemeralContainerStatuses, ec.Name)
	c := newContainer(w, ephemeralSpec(pod, ec), false, nil)
	c.ephemeral = true
	if prev != nil && (prev.State.Running != nil || prev.State.Terminated != nil) {
		// It ran before the engine restarted: it does not run again.
		c.status = *prev.DeepCopy()
		if c.status.State.Running != nil {
			c.status.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error",
				Message: "the node restarted while the ephemeral container ran", StartedAt: c.status.State.Running.StartedAt}}
		}
		c.done = true
	}
	w.ephemerals = append(w.ephemerals, c)
	return c
}

// ephemeralSpec is the container an ephemeral container runs as: its own
// fields, with its target's mounts and env under its own.
func ephemeralSpec(pod *corev1.Pod, ec *corev1.EphemeralContainer) corev1.Container {
	spec := corev1.Container(*ec.EphemeralContainerCommon.DeepCopy())
	if ec.TargetContainerName == "" {
		return spec
	}
	var target *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == ec.TargetContainerName {
			target = &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == ec.TargetContainerName {
			target = &pod.Spec.InitContainers[i]
		}
	}
	if target == nil {
		return spec
	}
	taken := map[string]bool{}
	for _, m := range spec.VolumeMounts {
		taken[m.MountPath] = true
	}
	for _, m := range target.VolumeMounts {
		if !taken[m.MountPath] {
			spec.VolumeMounts = append(spec.VolumeMounts, m)
		}
	}
	spec.EnvFrom = append(append([]corev1.EnvFromSource{}, target.EnvFrom...), spec.EnvFrom...)
	spec.Env = append(append([]corev1.EnvVar{}, target.Env...), spec.Env...)
	return spec
}

// pendingEphemeralsLocked are the ephemeral containers still to start.
func (w *podWorker) pendingEphemeralsLocked() []*container {
	var out []*container
	for _, c := range w.ephemerals {
		if !c.done {
			out = append(out, c)
		}
	}
	return out
}

// startEphemeral runs c once, on the pod's volumes, until it ends or the
// pod stops.
func (w *podWorker) startEphemeral(c *container) {
	w.mu.Lock()
	if c.done || w.stopping {
		w.mu.Unlock()
		return
	}
	c.done = true
	c.volumes, c.quotas = w.vols, w.quotas
	w.ephWG.Add(1) // under w.mu, before run's Wait (stopping)
	w.mu.Unlock()
	go func() {
		defer w.ephWG.Done()
		c.loop(w.ctx)
	}()
	w.report()
}
