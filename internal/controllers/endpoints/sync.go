package endpoints

import (
	"context"
	"errors"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// annotationLeader marks the Endpoints objects old leader election used;
// they have no Service and are not this controller's to delete.
const annotationLeader = "control-plane.alpha.kubernetes.io/leader"

// syncService makes one Service's slices and Endpoints match its pods.
func (c *Controller) syncService(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not a key this controller made: nothing to retry
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return c.serviceGone(ctx, ns, name)
	}
	if err != nil {
		return fmt.Errorf("get service %s: %w", key, err)
	}
	if svc.DeletionTimestamp != nil {
		// Going: its dependents go with it; writing more would race that.
		return nil
	}
	sel := selectorOf(svc)
	if sel == nil {
		// Slices and Endpoints of a Service without a selector are made by
		// someone else. Slices this controller made while it had one are
		// stale now and go; the Endpoints object is left, as Kubernetes
		// leaves it, for its new owner.
		return c.deleteSlices(ctx, ns, name)
	}
	pods, err := c.pods.Pods(ns).List(sel)
	if err != nil {
		return fmt.Errorf("list pods of service %s: %w", key, err)
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	sliceErr := c.syncSlices(ctx, svc, pods)
	c.recordFailure(svc, sliceErr, "FailedToUpdateEndpointSlices", "Error updating Endpoint Slices for Service %s/%s: %v")
	epErr := c.syncEndpoints(ctx, svc, pods)
	c.recordFailure(svc, epErr, "FailedToUpdateEndpoint", "Failed to update endpoint %s/%s: %v")
	return errors.Join(sliceErr, epErr)
}

// recordFailure puts a write failure on the Service as a Warning event,
// with Kubernetes' reasons, unless it is the kind a retry resolves by
// itself (a stale cache, a conflict): a rejected write (422) tells the user
// why the Service has no endpoints.
func (c *Controller) recordFailure(svc *corev1.Service, err error, reason, format string) {
	if err == nil || c.cfg.Recorder == nil || errors.Is(err, errStaleCache) || errors.Is(err, context.Canceled) ||
		apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return
	}
	c.cfg.Recorder.Eventf(svc, corev1.EventTypeWarning, reason, format, svc.Namespace, svc.Name, err)
}

// serviceGone deletes what the controller made for a deleted Service: its
// managed slices (garbage collection would too, through their owner
// references, but the controller does not rely on a collector running) and
// its Endpoints object, which Kubernetes' endpoints controller deletes
// whoever made it.
func (c *Controller) serviceGone(ctx context.Context, ns, name string) error {
	// The key may come from an Endpoints or slice event that reached this
	// controller before its Service's own event did (separate watches):
	// the cache saying "no Service" is then wrong, and acting on it would
	// delete a user's Endpoints of a selectorless Service just created.
	// Deleting is rare, so the API decides.
	if _, err := c.client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		return nil // the Service's event is on its way and syncs it
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get service %s/%s: %w", ns, name, err)
	}
	errs := []error{c.deleteSlices(ctx, ns, name)}
	if ep, err := c.endpoints.Endpoints(ns).Get(name); err == nil && ep.Annotations[annotationLeader] == "" {
		err := c.client.CoreV1().Endpoints(ns).Delete(ctx, name,
			metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &ep.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("delete endpoints %s/%s: %w", ns, name, err))
		} else {
			c.written.deleted(endpointsKey(ns, name))
		}
	}
	return errors.Join(errs...)
}

// deleteSlices deletes every slice the controller made for a Service.
func (c *Controller) deleteSlices(ctx context.Context, ns, name string) error {
	existing, err := c.managedSlices(ns, name)
	if err != nil {
		return err
	}
	// A sync that ran just before may have created a slice the cache does
	// not show yet; it must not be missed.
	if c.written.stale(slicePrefix(ns, name), versions(existing)) {
		return errStaleCache
	}
	return c.applySlices(ctx, name, slicePlan{delete: existing})
}
