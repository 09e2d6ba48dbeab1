package daemonset

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// calculateStatus is what ds's status should say at now, counted by node
// as Kubernetes counts: a node that should run the daemon is desired, and
// current if a pod is there; that node's oldest pod decides whether it is
// ready, available and updated; a node with a pod it should not run is
// misscheduled.
func calculateStatus(ds *appsv1.DaemonSet, hash string, states []*nodeState, now time.Time) appsv1.DaemonSetStatus {
	st := *ds.Status.DeepCopy()
	st.DesiredNumberScheduled, st.CurrentNumberScheduled, st.NumberMisscheduled = 0, 0, 0
	st.NumberReady, st.NumberAvailable, st.UpdatedNumberScheduled = 0, 0, 0
	for _, s := range states {
		running := s.running()
		if !s.shouldRun {
			if len(running) > 0 {
				st.NumberMisscheduled++
			}
			continue
		}
		st.DesiredNumberScheduled++
		if len(running) == 0 {
			continue
		}
		st.CurrentNumberScheduled++
		p := running[0]
		if controller.IsPodReady(p) {
			st.NumberReady++
			if controller.IsPodAvailable(p, ds.Spec.MinReadySeconds, now) {
				st.NumberAvailable++
			}
		}
		if p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == hash {
			st.UpdatedNumberScheduled++
		}
	}
	st.NumberUnavailable = st.DesiredNumberScheduled - st.NumberAvailable
	st.ObservedGeneration = ds.Generation
	return st
}

// updateStatus writes st unless ds already says it, retrying once on a
// fresh copy if ds was stale.
func (c *Controller) updateStatus(ctx context.Context, ds *appsv1.DaemonSet, st appsv1.DaemonSetStatus) (*appsv1.DaemonSet, error) {
	if equality.Semantic.DeepEqual(ds.Status, st) {
		return ds, nil
	}
	client := c.client.AppsV1().DaemonSets(ds.Namespace)
	for attempt := 0; ; attempt++ {
		ds.Status = st
		out, err := client.UpdateStatus(ctx, ds, metav1.UpdateOptions{})
		if err == nil || attempt == 1 {
			return out, err
		}
		fresh, err := client.Get(ctx, ds.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		st.CollisionCount = fresh.Status.CollisionCount
		ds = fresh
	}
}
