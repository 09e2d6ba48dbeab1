package daemonset

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	intstrutil "k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// nodeState is one node as a DaemonSet sees it.
type nodeState struct {
	name                      string
	shouldRun, shouldContinue bool
	pods                      []*corev1.Pod // the DaemonSet's pods for the node, oldest first, terminating ones included
}

// running are the node's pods that are neither terminating nor finished.
func (n *nodeState) running() []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range n.pods {
		if controller.IsPodActive(p) {
			out = append(out, p)
		}
	}
	return out
}

// sync brings one DaemonSet's pods to one per fitting node, rolls them to
// its current template and writes its status.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	ds, err := c.dsLister.DaemonSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.expect.Delete(key)
		return nil
	}
	if err != nil {
		return err
	}
	needsSync := c.expect.Satisfied(key)
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() {
		c.log.Warn("daemonset has an unusable selector", "ds", key, "err", err)
		return nil
	}
	all, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	pods, err := c.claimPods(ctx, ds, sel, all)
	if err != nil {
		return err
	}
	if ds.DeletionTimestamp != nil {
		return nil // the garbage collector takes the pods
	}
	hash, err := c.currentRevision(ctx, ds, pods)
	if err != nil {
		return err
	}
	states, stray, err := c.nodeStates(ds, pods)
	if err != nil {
		return err
	}
	var manageErr error
	if needsSync {
		manageErr = c.manage(ctx, ds, key, hash, states, stray)
		// Roll only on a settled cache: manage's own creations and
		// deletions are not in it yet.
		if manageErr == nil && c.expect.Satisfied(key) && ds.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
			manageErr = c.rollingUpdate(ctx, ds, key, hash, states, time.Now())
		}
	}
	st := calculateStatus(ds, hash, states, time.Now())
	updated, err := c.updateStatus(ctx, ds.DeepCopy(), st)
	if err != nil {
		return errors.Join(manageErr, err)
	}
	// Ready but not yet available: availability comes with time alone.
	if manageErr == nil && updated.Spec.MinReadySeconds > 0 && st.NumberReady != st.NumberAvailable {
		c.queue.AddAfter(key, time.Duration(updated.Spec.MinReadySeconds)*time.Second)
	}
	return manageErr
}

func (c *Controller) claimPods(ctx context.Context, ds *appsv1.DaemonSet, sel labels.Selector, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	pc := c.client.CoreV1().Pods(ds.Namespace)
	cl := &controller.Claimer{Owner: ds, Kind: kind, Selector: sel,
		CanAdopt: func(ctx context.Context) error {
			fresh, err := c.client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			return controller.CheckOwner(ds, fresh)
		},
		Patch: func(ctx context.Context, name string, patch []byte) error {
			_, err := pc.Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
	}
	return controller.Claim(ctx, cl, pods)
}

// nodeStates sorts pods by the node they are for, beside whether the
// DaemonSet belongs on each node; stray are the active pods for a node
// that no longer exists.
func (c *Controller) nodeStates(ds *appsv1.DaemonSet, pods []*corev1.Pod) ([]*nodeState, []*corev1.Pod, error) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return nil, nil, err
	}
	f := newFit(ds)
	byName := make(map[string]*nodeState, len(nodes))
	states := make([]*nodeState, 0, len(nodes))
	for _, n := range nodes {
		run, cont := f.node(n)
		s := &nodeState{name: n.Name, shouldRun: run, shouldContinue: cont}
		byName[n.Name] = s
		states = append(states, s)
	}
	sort.Slice(states, func(i, j int) bool { return states[i].name < states[j].name })
	var stray []*corev1.Pod
	for _, p := range pods {
		target := targetNode(p)
		switch s := byName[target]; {
		case s != nil:
			s.pods = append(s.pods, p)
		case target != "" && controller.IsPodActive(p):
			// For a node that is gone. Kubernetes deletes only the
			// unbound ones and leaves bound ones to its pod garbage
			// collector, which skiff does not have yet.
			stray = append(stray, p)
		}
		// A pod for no node (adopted by its labels) is not a daemon pod
		// of any node: ignored, as upstream.
	}
	for _, s := range states {
		sort.SliceStable(s.pods, func(i, j int) bool { return olderFirst(s.pods[i], s.pods[j]) })
	}
	return states, stray, nil
}

// olderFirst orders pods as Kubernetes' podByCreationTimestampAndPhase:
// running before not, then older before newer.
func olderFirst(a, b *corev1.Pod) bool {
	if ar, br := a.Status.Phase == corev1.PodRunning, b.Status.Phase == corev1.PodRunning; ar != br {
		return ar
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// fenceposts resolves maxSurge and maxUnavailable against desired (both
// rounded up, as Kubernetes does); never both zero.
func fenceposts(ds *appsv1.DaemonSet, desired int) (surge, unavailable int) {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ru != nil {
		if ru.MaxSurge != nil {
			surge, _ = intstrutil.GetScaledValueFromIntOrPercent(ru.MaxSurge, desired, true)
		}
		if ru.MaxUnavailable != nil {
			unavailable, _ = intstrutil.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, desired, true)
		} else {
			unavailable = 1
		}
	}
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable
}

// manage creates the missing daemon pods and deletes the surplus ones:
// those on nodes they no longer fit, failed ones (to be replaced), and all
// but the oldest on a node (with maxSurge, the oldest old and the oldest
// new one may share a node while the new one becomes available).
func (c *Controller) manage(ctx context.Context, ds *appsv1.DaemonSet, key, hash string, states []*nodeState, stray []*corev1.Pod) error {
	surge, _ := fenceposts(ds, len(states))
	var create []string
	del := append([]*corev1.Pod(nil), stray...)
	for _, s := range states {
		running := s.running()
		switch {
		case s.shouldRun && len(s.pods) == 0:
			create = append(create, s.name)
		case s.shouldContinue:
			for _, p := range s.pods {
				if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodFailed {
					c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDaemonPod",
						"Found failed daemon pod %s/%s on node %s, will try to kill it", p.Namespace, p.Name, s.name)
					del = append(del, p)
				}
			}
			if len(running) <= 1 {
				break
			}
			if surge == 0 || ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
				del = append(del, running[1:]...)
				break
			}
			var oldestNew, oldestOld bool
			for _, p := range running {
				if p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == hash {
					if !oldestNew {
						oldestNew = true
						continue
					}
				} else if !oldestOld {
					oldestOld = true
					continue
				}
				del = append(del, p)
			}
		default:
			del = append(del, running...)
		}
	}
	return c.syncNodes(ctx, ds, key, hash, create, del)
}

// rollingUpdate replaces pods of older templates, as Kubernetes does:
// without surge, an old pod is deleted (and its replacement made by the
// next manage) while fewer than maxUnavailable nodes lack an available
// pod; with surge, a new pod is made beside the old one on up to maxSurge
// nodes at once, and the old one deleted once the new one is available.
// An old pod that is not available is replaced at once either way.
func (c *Controller) rollingUpdate(ctx context.Context, ds *appsv1.DaemonSet, key, hash string, states []*nodeState, now time.Time) error {
	desired := 0
	for _, s := range states {
		if s.shouldRun {
			desired++
		}
	}
	maxSurge, maxUnavailable := fenceposts(ds, desired)
	available := func(p *corev1.Pod) bool { return controller.IsPodAvailable(p, ds.Spec.MinReadySeconds, now) }
	var del []*corev1.Pod
	var create []string
	if maxSurge == 0 {
		unavailable := 0
		var replace, candidates []*corev1.Pod
		for _, s := range states {
			if !s.shouldRun && len(s.pods) == 0 {
				continue
			}
			newPod, oldPod, ok := updatedOnNode(s.running(), hash)
			switch {
			case !ok:
				unavailable++
			case oldPod == nil && newPod == nil, oldPod != nil && newPod != nil:
				unavailable++ // manage makes or removes the pod
			case newPod != nil:
				if !available(newPod) {
					unavailable++
				}
			case !available(oldPod):
				replace = append(replace, oldPod)
			default:
				candidates = append(candidates, oldPod)
			}
		}
		n := min(max(maxUnavailable-unavailable, 0), len(candidates))
		del = append(replace, candidates[:n]...)
	} else {
		surging := 0
		var candidates []string
		for _, s := range states {
			if !s.shouldRun {
				continue
			}
			newPod, oldPod, ok := updatedOnNode(s.running(), hash)
			switch {
			case !ok:
				surging++
			case oldPod == nil:
			case newPod == nil:
				if !available(oldPod) {
					create = append(create, s.name)
				} else {
					candidates = append(candidates, s.name)
				}
			case !available(newPod):
				surging++
			default:
				del = append(del, oldPod)
			}
		}
		n := min(max(maxSurge-surging, 0), len(candidates))
		create = append(create, candidates[:n]...)
	}
	return c.syncNodes(ctx, ds, key, hash, create, del)
}

// updatedOnNode splits a node's running pods into the one of the current
// template and the one of an older template; ok is false when there are
// more than one of either (manage removes the surplus first).
func updatedOnNode(pods []*corev1.Pod, hash string) (newPod, oldPod *corev1.Pod, ok bool) {
	for _, p := range pods {
		if p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == hash {
			if newPod != nil {
				return nil, nil, false
			}
			newPod = p
		} else {
			if oldPod != nil {
				return nil, nil, false
			}
			oldPod = p
		}
	}
	return newPod, oldPod, true
}

// syncNodes creates a pod for each node of create and deletes del, at most
// BurstReplicas of each, with the expectations set first.
func (c *Controller) syncNodes(ctx context.Context, ds *appsv1.DaemonSet, key, hash string, create []string, del []*corev1.Pod) error {
	if len(create) == 0 && len(del) == 0 {
		return nil
	}
	create = create[:min(len(create), BurstReplicas)]
	del = del[:min(len(del), BurstReplicas)]
	keys := make([]string, len(del))
	for i, p := range del {
		keys[i] = controller.PodKey(p)
	}
	c.expect.Expect(key, len(create), keys)

	tmpl := ds.Spec.Template.DeepCopy()
	tmpl.Labels = withLabel(tmpl.Labels, appsv1.DefaultDaemonSetUniqueLabelKey, hash)
	tmpl.Labels[templateGenerationLabel] = strconv.FormatInt(ds.Generation, 10)
	addTolerations(&tmpl.Spec)
	ref := controller.NewControllerRef(ds, kind)
	errs := make([]error, len(create)+len(del))
	var wg sync.WaitGroup
	for i, node := range create {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created := false
			defer func() {
				if !created {
					c.expect.CreationObserved(key) // never coming
				}
			}()
			pod, err := controller.PodFromTemplate(tmpl, ds.Namespace, ds.Name+"-", ref)
			if err != nil {
				errs[i] = err
				return
			}
			pinToNode(&pod.Spec, node)
			_, err = c.client.CoreV1().Pods(ds.Namespace).Create(ctx, pod, metav1.CreateOptions{})
			switch {
			case err == nil:
				created = true
				c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s on node %s", pod.GenerateName, node)
			case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
			default:
				c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
				errs[i] = fmt.Errorf("creating a pod on node %s: %w", node, err)
			}
		}()
	}
	for j, p := range del {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
				Preconditions: &metav1.Preconditions{UID: &p.UID}})
			switch {
			case err == nil:
				c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
			case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
				c.expect.DeletionObserved(key, keys[j]) // already gone: no event will come
			default:
				c.expect.DeletionObserved(key, keys[j])
				c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
				errs[len(create)+j] = fmt.Errorf("deleting pod %s/%s: %w", p.Namespace, p.Name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
