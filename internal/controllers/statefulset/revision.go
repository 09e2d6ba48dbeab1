package statefulset

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// revisionPatch is what a ControllerRevision of a StatefulSet records, as
// Kubernetes' getPatch does: the pod template, replacing the whole of it.
func revisionPatch(set *appsv1.StatefulSet) ([]byte, error) {
	tmpl, err := json.Marshal(set.Spec.Template)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(tmpl, &m); err != nil {
		return nil, err
	}
	m["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": m}})
}

// sameTemplate: the revision records the set's template.
func sameTemplate(rev *appsv1.ControllerRevision, set *appsv1.StatefulSet) bool {
	t, err := templateOf(rev)
	return err == nil && equality.Semantic.DeepEqual(*t, set.Spec.Template)
}

// templateOf is the pod template a revision recorded.
func templateOf(rev *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, error) {
	var patch struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(rev.Data.Raw, &patch); err != nil {
		return nil, fmt.Errorf("controllerrevision %s: %w", rev.Name, err)
	}
	return &patch.Spec.Template, nil
}

// hashOf is Kubernetes' ControllerRevision hash: fnv32a of the data and the
// collision count, safely encoded.
func hashOf(data []byte, collisions *int32) string {
	h := fnv.New32a()
	h.Write(data)
	if collisions != nil {
		h.Write([]byte(strconv.FormatInt(int64(*collisions), 10)))
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// ownedRevisions are the set's ControllerRevisions, oldest first.
func (c *Controller) ownedRevisions(set *appsv1.StatefulSet) ([]*appsv1.ControllerRevision, error) {
	all, err := c.revisions.ControllerRevisions(set.Namespace).List(labelsEverything())
	if err != nil {
		return nil, err
	}
	var out []*appsv1.ControllerRevision
	for _, r := range all {
		if ref := metav1.GetControllerOf(r); ref != nil && ref.UID == set.UID {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Revision != out[j].Revision {
			return out[i].Revision < out[j].Revision
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// revisions returns the set's current and update revisions, creating the
// update revision from the template if no revision records it, and the
// collision count to write back.
func (c *Controller) revisionsOf(ctx context.Context, set *appsv1.StatefulSet, owned []*appsv1.ControllerRevision) (current, update *appsv1.ControllerRevision, collisions int32, err error) {
	if set.Status.CollisionCount != nil {
		collisions = *set.Status.CollisionCount
	}
	data, err := revisionPatch(set)
	if err != nil {
		return nil, nil, collisions, err
	}
	var maxRev int64
	for _, r := range owned {
		maxRev = max(maxRev, r.Revision)
	}
	for _, r := range owned {
		if sameTemplate(r, set) {
			update = r
		}
	}
	if update == nil {
		for {
			name := set.Name + "-" + hashOf(data, &collisions)
			rev := &appsv1.ControllerRevision{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: set.Namespace,
					Labels:          copyLabels(set.Spec.Template.Labels, map[string]string{appsv1.ControllerRevisionHashLabelKey: name}),
					OwnerReferences: []metav1.OwnerReference{*controller.NewControllerRef(set, kind)}},
				Data:     runtime.RawExtension{Raw: data},
				Revision: maxRev + 1,
			}
			created, err := c.client.AppsV1().ControllerRevisions(set.Namespace).Create(ctx, rev, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				existing, gerr := c.client.AppsV1().ControllerRevisions(set.Namespace).Get(ctx, name, metav1.GetOptions{})
				if gerr != nil {
					return nil, nil, collisions, fmt.Errorf("get controllerrevision %s: %w", name, gerr)
				}
				if ref := metav1.GetControllerOf(existing); ref != nil && ref.UID == set.UID && sameTemplate(existing, set) {
					update = existing
					break
				}
				collisions++ // another template hashed to the name
				continue
			}
			if err != nil {
				return nil, nil, collisions, fmt.Errorf("create controllerrevision %s: %w", name, err)
			}
			update = created
			break
		}
	} else if update.Revision < maxRev {
		// A rollback to an older template: it becomes the newest revision.
		cp := update.DeepCopy()
		cp.Revision = maxRev + 1
		updated, err := c.client.AppsV1().ControllerRevisions(set.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
		if err != nil {
			return nil, nil, collisions, fmt.Errorf("update controllerrevision %s: %w", cp.Name, err)
		}
		update = updated
	}
	for _, r := range owned {
		if r.Name == set.Status.CurrentRevision {
			current = r
		}
	}
	if current == nil {
		current = update
	}
	return current, update, collisions, nil
}

// truncateHistory deletes the oldest revisions beyond revisionHistoryLimit
// that neither the status nor a live pod names.
func (c *Controller) truncateHistory(ctx context.Context, set *appsv1.StatefulSet, owned []*appsv1.ControllerRevision, pods []*corev1.Pod, current, update *appsv1.ControllerRevision) error {
	limit := 10
	if set.Spec.RevisionHistoryLimit != nil {
		limit = int(*set.Spec.RevisionHistoryLimit)
	}
	live := map[string]bool{current.Name: true, update.Name: true}
	for _, p := range pods {
		live[p.Labels[appsv1.ControllerRevisionHashLabelKey]] = true
	}
	var history []*appsv1.ControllerRevision
	for _, r := range owned {
		if !live[r.Name] {
			history = append(history, r)
		}
	}
	for i := 0; i < len(history)-limit; i++ {
		err := c.client.AppsV1().ControllerRevisions(set.Namespace).Delete(ctx, history[i].Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete controllerrevision %s: %w", history[i].Name, err)
		}
	}
	return nil
}

func copyLabels(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
