package job

import (
	"fmt"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// matchPodFailurePolicy is the action of the first rule of policy that a
// failed pod matches, with a message saying why ("" when none matches:
// the failure counts against the backoff limit). FailIndex, which needs
// backoffLimitPerIndex, is not done and counts as Count.
func matchPodFailurePolicy(policy *batchv1.PodFailurePolicy, p *corev1.Pod) (batchv1.PodFailurePolicyAction, string) {
	if policy == nil {
		return "", ""
	}
	for i, r := range policy.Rules {
		if r.OnExitCodes != nil {
			if name, code, ok := matchExitCodes(r.OnExitCodes, p); ok {
				return r.Action, fmt.Sprintf("Container %s for pod %s/%s failed with exit code %d matching %v rule at index %d",
					name, p.Namespace, p.Name, code, r.Action, i)
			}
			continue
		}
		for _, pc := range r.OnPodConditions {
			for _, c := range p.Status.Conditions {
				if c.Type == pc.Type && c.Status == pc.Status {
					return r.Action, fmt.Sprintf("Pod %s/%s has condition %v matching %v rule at index %d",
						p.Namespace, p.Name, c.Type, r.Action, i)
				}
			}
		}
	}
	return "", ""
}

// matchExitCodes finds a terminated container (of the named one, if the
// requirement names one) whose non-zero exit code the requirement matches.
func matchExitCodes(req *batchv1.PodFailurePolicyOnExitCodesRequirement, p *corev1.Pod) (string, int32, bool) {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			if req.ContainerName != nil && *req.ContainerName != cs.Name {
				continue
			}
			t := cs.State.Terminated
			if t == nil || t.ExitCode == 0 {
				continue
			}
			in := slices.Contains(req.Values, t.ExitCode)
			if req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && in ||
				req.Operator == batchv1.PodFailurePolicyOnExitCodesOpNotIn && !in {
				return cs.Name, t.ExitCode, true
			}
		}
	}
	return "", 0, false
}
