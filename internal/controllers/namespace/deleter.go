package namespace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// finalizerWait is how long a namespace whose content is held only by
// finalizers waits before it is looked at again: upstream's
// finalizerEstimateSeconds, time for the garbage collector and others to
// finish.
const finalizerWait = 15 * time.Second

// maxConflictRetries bounds the re-reads when the namespace changed under
// a status update or the finalize.
const maxConflictRetries = 5

// deleter is one pass over one terminating namespace, upstream's
// namespacedResourcesDeleter.
type deleter struct {
	client    kubernetes.Interface
	dynamic   dynamic.Interface
	discovery discovery.ServerResourcesInterface
	log       *slog.Logger
}

// delete deletes name's content and, once none is left, removes the
// "kubernetes" finalizer. wait > 0 says content is still going and when to
// look again.
func (d *deleter) delete(ctx context.Context, name string) (wait time.Duration, err error) {
	nss := d.client.CoreV1().Namespaces()
	ns, err := nss.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("get namespace %s: %w", name, err)
	}
	if ns.DeletionTimestamp == nil {
		return 0, nil
	}
	if ns.Status.Phase != corev1.NamespaceTerminating {
		// The API server sets it on DELETE; a namespace marked otherwise
		// (restored from an older store) gets it here.
		ns, err = d.retryOnConflict(ctx, ns, func(ns *corev1.Namespace) (*corev1.Namespace, error) {
			if ns.Status.Phase == corev1.NamespaceTerminating {
				return ns, nil
			}
			ns.Status.Phase = corev1.NamespaceTerminating
			return nss.UpdateStatus(ctx, ns, metav1.UpdateOptions{})
		})
		if err != nil {
			return 0, fmt.Errorf("mark namespace %s terminating: %w", name, err)
		}
	}
	if !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return 0, nil // ours is done; other finalizers are their owners'
	}
	estimate, err := d.deleteAllContent(ctx, ns)
	if err != nil {
		return 0, err
	}
	if estimate > 0 {
		return min(max(estimate, time.Second), maxRecheck), nil
	}
	_, err = d.retryOnConflict(ctx, ns, func(ns *corev1.Namespace) (*corev1.Namespace, error) {
		ns.Spec.Finalizers = slices.DeleteFunc(ns.Spec.Finalizers, func(f corev1.FinalizerName) bool {
			return f == corev1.FinalizerKubernetes
		})
		out, err := nss.Finalize(ctx, ns, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return ns, nil // removed already
		}
		return out, err
	})
	if err != nil {
		return 0, fmt.Errorf("finalize namespace %s: %w", name, err)
	}
	d.log.Debug("namespace emptied and finalized", "namespace", name)
	return 0, nil
}

// retryOnConflict runs change on ns, and on a conflict again on a fresh
// read, a bounded number of times.
func (d *deleter) retryOnConflict(ctx context.Context, ns *corev1.Namespace, change func(*corev1.Namespace) (*corev1.Namespace, error)) (*corev1.Namespace, error) {
	for attempt := 0; ; attempt++ {
		out, err := change(ns.DeepCopy())
		if !apierrors.IsConflict(err) || attempt >= maxConflictRetries {
			return out, err
		}
		if ns, err = d.client.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{}); err != nil {
			return nil, err
		}
	}
}

// deleteAllContent deletes every namespaced resource's objects in ns,
// records the conditions of the pass in ns's status, and returns how long
// what remains is expected to take (0: nothing remains).
func (d *deleter) deleteAllContent(ctx context.Context, ns *corev1.Namespace) (time.Duration, error) {
	var errs []error
	var conds conditions
	lists, err := d.discovery.ServerPreferredNamespacedResources()
	if err != nil {
		// A partial answer still names what can be deleted now.
		errs = append(errs, err)
		conds.discoveryFailed(err)
	}
	deletable := discovery.FilteredBy(discovery.SupportsAllVerbs{Verbs: []string{"delete"}}, lists)
	var gvErrs []error
	type target struct {
		gvr        schema.GroupVersionResource
		collection bool // deletecollection, else list and delete each
	}
	var targets []target
	for _, l := range deletable {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			gvErrs = append(gvErrs, err)
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") {
				continue // a subresource: its parent's deletion covers it
			}
			targets = append(targets, target{gv.WithResource(r.Name), slices.Contains(r.Verbs, "deletecollection")})
		}
	}
	if len(gvErrs) > 0 {
		err := errors.Join(gvErrs...)
		errs = append(errs, err)
		conds.groupVersionFailed(err)
	}
	left := remaining{byResource: map[schema.GroupVersionResource]int{}, byFinalizer: map[string]int{}}
	var estimate time.Duration
	for _, t := range targets {
		wait, err := d.deleteResource(ctx, t.gvr, t.collection, ns, &left)
		if err != nil {
			errs = append(errs, err)
			conds.contentFailed(err)
		}
		estimate = max(estimate, wait)
	}
	conds.contentTotals(left)
	if conds.apply(&ns.Status) {
		if _, err := d.client.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			// The conditions are a report: the next pass writes them again.
			d.log.Warn("namespace conditions not written", "namespace", ns.Name, "err", err)
		}
	}
	return estimate, errors.Join(errs...)
}

// deleteResource deletes gvr's objects in ns and counts what remains into
// left. The wait it returns is how long the remaining objects may still
// take: pods their grace period (counted from the namespace's deletion),
// objects held by finalizers finalizerWait. Objects that remain with
// neither are an error, as upstream reports them.
func (d *deleter) deleteResource(ctx context.Context, gvr schema.GroupVersionResource, collection bool, ns *corev1.Namespace, left *remaining) (time.Duration, error) {
	client := d.dynamic.Resource(gvr).Namespace(ns.Name)
	grace, err := d.podGrace(ctx, gvr, ns)
	if err != nil {
		return 0, err
	}
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	if collection {
		err = client.DeleteCollection(ctx, opts, metav1.ListOptions{})
		if apierrors.IsMethodNotSupported(err) || apierrors.IsNotFound(err) {
			collection, err = false, nil // not served after all: one by one
		}
		if err != nil {
			return grace, fmt.Errorf("delete collection %s in %s: %w", gvr, ns.Name, err)
		}
	}
	if !collection {
		list, err := client.List(ctx, metav1.ListOptions{})
		if err != nil {
			return grace, fmt.Errorf("list %s in %s: %w", gvr, ns.Name, err)
		}
		for _, it := range list.Items {
			if err := client.Delete(ctx, it.GetName(), opts); err != nil && !apierrors.IsNotFound(err) {
				return grace, fmt.Errorf("delete %s %s/%s: %w", gvr, ns.Name, it.GetName(), err)
			}
		}
	}
	list, err := client.List(ctx, metav1.ListOptions{})
	if apierrors.IsMethodNotSupported(err) {
		return grace, nil
	}
	if err != nil {
		return grace, fmt.Errorf("list %s in %s: %w", gvr, ns.Name, err)
	}
	if len(list.Items) == 0 {
		return 0, nil
	}
	held := false
	left.byResource[gvr] += len(list.Items)
	for _, it := range list.Items {
		for _, f := range it.GetFinalizers() {
			left.byFinalizer[f]++
			held = true
		}
	}
	switch {
	case grace > 0:
		return grace, nil
	case held:
		return finalizerWait, nil
	}
	return finalizerWait, fmt.Errorf("unexpected items still remain in namespace: %s for gvr: %v", ns.Name, gvr)
}

// podGrace is upstream's estimateGracefulTermination: for pods, the
// longest grace period of those not yet finished, less the time since the
// namespace's deletion began; 0 for every other resource.
func (d *deleter) podGrace(ctx context.Context, gvr schema.GroupVersionResource, ns *corev1.Namespace) (time.Duration, error) {
	if gvr.Group != "" || gvr.Resource != "pods" {
		return 0, nil
	}
	pods, err := d.client.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("list pods in %s: %w", ns.Name, err)
	}
	var longest int64
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		g := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if p.Spec.TerminationGracePeriodSeconds != nil {
			g = *p.Spec.TerminationGracePeriodSeconds
		}
		if p.DeletionGracePeriodSeconds != nil {
			g = *p.DeletionGracePeriodSeconds
		}
		longest = max(longest, g)
	}
	left := time.Duration(longest)*time.Second - time.Since(ns.DeletionTimestamp.Time)
	return max(left, 0), nil
}
