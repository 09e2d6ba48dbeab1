package endpoints

import (
	"context"
	"errors"
	"fmt"
	"sort"

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
	return errors.Join(c.syncSlices(ctx, svc, pods), c.syncEndpoints(ctx, svc, pods))
}

// serviceGone deletes what the controller made for a deleted Service: its
// managed slices (garbage collection would too, through their owner
// references, but the controller does not rely on a collector running) and
// its Endpoints object, which Kubernetes' endpoints controller deletes
// whoever made it.
func (c *Controller) serviceGone(ctx context.Context, ns, name string) error {
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
