package scheduler

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
)

// SelectedNodeAnnotation is what the scheduler sets on a pod's unbound
// WaitForFirstConsumer claim: the node it chose, where the provisioner
// makes the volume (Kubernetes' volume.kubernetes.io/selected-node).
const SelectedNodeAnnotation = "volume.kubernetes.io/selected-node"

// claimConstraints is what a pod's PersistentVolumeClaims ask of its node,
// as Kubernetes' VolumeBinding plugin reads them: a bound claim's volume
// may have node affinity; an unbound claim that waits for its first
// consumer is free until the scheduler selects a node for it, and then
// holds to that node.
type claimConstraints struct {
	affinity []*corev1.NodeSelector // every one must match
	node     string                 // a claim's selected node, if any
	// toSelect are the unbound WaitForFirstConsumer claims with no
	// selected node: they get the chosen node.
	toSelect []*corev1.PersistentVolumeClaim
}

// podClaims resolves the pod's claims. A claim or volume that is missing,
// or an unbound claim that does not wait for its consumer, makes the pod
// unschedulable for now, with the reason as message.
func (s *Scheduler) podClaims(pod *corev1.Pod) (*claimConstraints, string, error) {
	cc := &claimConstraints{}
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		name := v.PersistentVolumeClaim.ClaimName
		if s.claims == nil {
			return nil, fmt.Sprintf("persistentvolumeclaim %q not found", name), nil
		}
		pvc, err := s.claims.PersistentVolumeClaims(pod.Namespace).Get(name)
		if apierrors.IsNotFound(err) {
			return nil, fmt.Sprintf("persistentvolumeclaim %q not found", name), nil
		} else if err != nil {
			return nil, "", err
		}
		if pvc.DeletionTimestamp != nil {
			return nil, fmt.Sprintf("persistentvolumeclaim %q is being deleted", name), nil
		}
		if pvc.Spec.VolumeName != "" {
			pv, err := s.volumes.Get(pvc.Spec.VolumeName)
			if apierrors.IsNotFound(err) {
				return nil, fmt.Sprintf("persistentvolume %q not found", pvc.Spec.VolumeName), nil
			} else if err != nil {
				return nil, "", err
			}
			if pv.Spec.NodeAffinity != nil && pv.Spec.NodeAffinity.Required != nil {
				cc.affinity = append(cc.affinity, pv.Spec.NodeAffinity.Required)
			}
			continue
		}
		if n := pvc.Annotations[SelectedNodeAnnotation]; n != "" {
			if cc.node != "" && cc.node != n {
				return nil, "pod's claims were selected for different nodes", nil
			}
			cc.node = n
			continue
		}
		if !s.waitsForConsumer(pvc) {
			return nil, "pod has unbound immediate PersistentVolumeClaims", nil
		}
		cc.toSelect = append(cc.toSelect, pvc)
	}
	return cc, "", nil
}

// waitsForConsumer: the claim's class binds on first consumer.
func (s *Scheduler) waitsForConsumer(pvc *corev1.PersistentVolumeClaim) bool {
	if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName == "" || s.classes == nil {
		return false
	}
	sc, err := s.classes.Get(*pvc.Spec.StorageClassName)
	return err == nil && sc.VolumeBindingMode != nil && *sc.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer
}

// fitsVolumes is the VolumeBinding filter.
func fitsVolumes(p *podInfo, n *nodeInfo) []string {
	if p.claims == nil {
		return nil
	}
	if p.claims.node != "" && p.claims.node != n.node.Name {
		return []string{"node(s) didn't match the node selected for the pod's volume claims"}
	}
	for _, sel := range p.claims.affinity {
		if ok, err := corev1helpers.MatchNodeSelectorTerms(n.node, sel); err != nil || !ok {
			return []string{"node(s) had volume node affinity conflict"}
		}
	}
	return nil
}

// selectNode annotates the pod's unbound WaitForFirstConsumer claims with
// the node chosen, before the pod is bound there.
func (s *Scheduler) selectNode(ctx context.Context, cc *claimConstraints, node string) error {
	if cc == nil {
		return nil
	}
	for _, pvc := range cc.toSelect {
		patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, SelectedNodeAnnotation, node)
		if _, err := s.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Patch(ctx, pvc.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("select node %s for claim %s/%s: %w", node, pvc.Namespace, pvc.Name, err)
		}
	}
	return nil
}
