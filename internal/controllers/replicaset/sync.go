package replicaset

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// sync brings one ReplicaSet's pods to spec.replicas and writes its status.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not a key of ours: nothing to retry
	}
	rs, err := c.rsLister.ReplicaSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.expect.Delete(key)
		return nil
	}
	if err != nil {
		return err
	}
	// Read before listing: expectations met now stay met for this list.
	needsSync := c.expect.Satisfied(key)
	sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil || sel.Empty() {
		// Validation forbids both; a selector that selects everything
		// would adopt every pod of the namespace.
		c.log.Warn("replicaset has an unusable selector", "rs", key, "err", err)
		return nil
	}
	all, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	pods, err := c.claimPods(ctx, rs, sel, controller.FilterActivePods(all))
	if err != nil {
		return err
	}

	var manageErr error
	if needsSync && rs.DeletionTimestamp == nil {
		manageErr = c.manage(ctx, rs, key, pods)
	}
	rs = rs.DeepCopy()
	st := calculateStatus(rs, pods, manageErr, time.Now())
	updated, err := c.updateStatus(ctx, rs, st)
	if err != nil {
		return errors.Join(manageErr, err)
	}
	// Ready but not yet available: availability comes with time alone.
	if manageErr == nil && updated.Spec.MinReadySeconds > 0 &&
		updated.Status.ReadyReplicas == replicas(updated) && updated.Status.AvailableReplicas != replicas(updated) {
		c.queue.AddAfter(key, time.Duration(updated.Spec.MinReadySeconds)*time.Second)
	}
	return manageErr
}

func replicas(rs *appsv1.ReplicaSet) int32 {
	if rs.Spec.Replicas == nil {
		return 1
	}
	return *rs.Spec.Replicas
}

func (c *Controller) claimPods(ctx context.Context, rs *appsv1.ReplicaSet, sel labels.Selector, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	pc := c.client.CoreV1().Pods(rs.Namespace)
	cl := &controller.Claimer{Owner: rs, Kind: kind, Selector: sel,
		CanAdopt: func(ctx context.Context) error {
			fresh, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			return controller.CheckOwner(rs, fresh)
		},
		Patch: func(ctx context.Context, name string, patch []byte) error {
			_, err := pc.Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
	}
	return controller.Claim(ctx, cl, pods)
}

// manage creates or deletes pods so that len(pods) becomes spec.replicas,
// at most BurstReplicas per sync.
func (c *Controller) manage(ctx context.Context, rs *appsv1.ReplicaSet, key string, pods []*corev1.Pod) error {
	diff := len(pods) - int(replicas(rs))
	switch {
	case diff < 0:
		n := min(-diff, BurstReplicas)
		// Expect first: the informer may see a pod before Create returns.
		c.expect.ExpectCreations(key, n)
		ref := controller.NewControllerRef(rs, kind)
		ok, err := slowStart(n, func() error {
			pod, err := controller.PodFromTemplate(&rs.Spec.Template, rs.Namespace, rs.Name+"-", ref)
			if err != nil {
				return err
			}
			created, err := c.client.CoreV1().Pods(rs.Namespace).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
					return nil // the namespace is going: nothing to create
				}
				c.recorder.Eventf(rs, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
				return err
			}
			c.recorder.Eventf(rs, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", created.Name)
			return nil
		})
		// The creates that failed or were skipped will never be observed.
		for range n - ok {
			c.expect.CreationObserved(key)
		}
		return err
	case diff > 0:
		n := min(diff, BurstReplicas)
		victims := append([]*corev1.Pod(nil), pods...)
		controller.SortForDeletion(victims)
		victims = victims[:n]
		keys := make([]string, len(victims))
		for i, p := range victims {
			keys[i] = controller.PodKey(p)
		}
		c.expect.ExpectDeletions(key, keys)
		var wg sync.WaitGroup
		errs := make([]error, len(victims))
		for i, p := range victims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
					Preconditions: &metav1.Preconditions{UID: &p.UID}})
				if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
					c.expect.DeletionObserved(key, keys[i])
					c.recorder.Eventf(rs, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
					errs[i] = err
					return
				}
				if err != nil {
					c.expect.DeletionObserved(key, keys[i]) // already gone: no event will come
					return
				}
				c.recorder.Eventf(rs, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	return nil
}

// slowStart calls fn n times in batches of 1, 2, 4, ... run in parallel,
// stopping after the first batch with a failure, so a template the API
// rejects costs one failed call rather than n. It returns how many calls
// succeeded.
func slowStart(n int, fn func() error) (int, error) {
	ok := 0
	for batch := 1; ok < n; batch *= 2 {
		size := min(batch, n-ok)
		errs := make([]error, size)
		var wg sync.WaitGroup
		for i := range size {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = fn()
			}()
		}
		wg.Wait()
		failed := 0
		for _, e := range errs {
			if e != nil {
				failed++
			}
		}
		ok += size - failed
		if failed > 0 {
			return ok, fmt.Errorf("creating pods: %w", errors.Join(errs...))
		}
	}
	return ok, nil
}
