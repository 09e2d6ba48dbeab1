package daemonset

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// templateGenerationLabel is the deprecated label Kubernetes still puts on
// daemon pods: the DaemonSet's generation when the pod was made.
const templateGenerationLabel = "pod-template-generation"

// revisionData is what a ControllerRevision of a DaemonSet holds, as in
// Kubernetes: a strategic merge patch that replaces the template.
func revisionData(ds *appsv1.DaemonSet) ([]byte, error) {
	b, err := json.Marshal(ds.Spec.Template)
	if err != nil {
		return nil, err
	}
	var tmpl map[string]any
	if err := json.Unmarshal(b, &tmpl); err != nil {
		return nil, err
	}
	tmpl["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": tmpl}})
}

// hashOf names revision data: a stable hash of it and of the collision
// count, in rand.SafeEncodeString's alphabet (a valid label value that
// spells no words), as Kubernetes' controller history does.
func hashOf(data []byte, collisionCount *int32) string {
	h := fnv.New32a()
	h.Write(data)
	if collisionCount != nil {
		var buf [4]byte
		binary.LittleEndian.PutUint32(buf[:], uint32(*collisionCount))
		h.Write(buf[:])
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// ownRevisions are the ControllerRevisions ds controls, oldest first.
func (c *Controller) ownRevisions(ds *appsv1.DaemonSet) ([]*appsv1.ControllerRevision, error) {
	all, err := c.revisions.ControllerRevisions(ds.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var out []*appsv1.ControllerRevision
	for _, r := range all {
		if ref := metav1.GetControllerOf(r); ref != nil && ref.UID == ds.UID {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Revision < out[j].Revision })
	return out, nil
}

// errCollision: the revision's name is taken by other data; the status's
// collision count was bumped and the next sync hashes anew.
var errCollision = fmt.Errorf("controllerrevision hash collision")

// currentRevision returns the hash of ds's template, making sure a
// ControllerRevision records it as the newest revision, and drops old
// revisions beyond spec.revisionHistoryLimit that no pod still uses.
func (c *Controller) currentRevision(ctx context.Context, ds *appsv1.DaemonSet, pods []*corev1.Pod) (string, error) {
	data, err := revisionData(ds)
	if err != nil {
		return "", fmt.Errorf("daemonset %s/%s: revision data: %w", ds.Namespace, ds.Name, err)
	}
	hash := hashOf(data, ds.Status.CollisionCount)
	name := ds.Name + "-" + hash
	revs, err := c.ownRevisions(ds)
	if err != nil {
		return "", err
	}
	var maxRev int64
	var cur *appsv1.ControllerRevision
	for _, r := range revs {
		maxRev = max(maxRev, r.Revision)
		if r.Name == name {
			cur = r
		}
	}
	client := c.client.AppsV1().ControllerRevisions(ds.Namespace)
	switch {
	case cur == nil:
		rev := &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ds.Namespace,
				Labels:          withLabel(ds.Spec.Template.Labels, appsv1.DefaultDaemonSetUniqueLabelKey, hash),
				OwnerReferences: []metav1.OwnerReference{*controller.NewControllerRef(ds, kind)}},
			Data:     runtime.RawExtension{Raw: data},
			Revision: maxRev + 1,
		}
		_, err := client.Create(ctx, rev, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// Made by an earlier sync the cache has not seen yet, or
			// another DaemonSet's: only the first is ours to use.
			got, gerr := client.Get(ctx, name, metav1.GetOptions{})
			if gerr != nil {
				return "", gerr
			}
			if ref := metav1.GetControllerOf(got); ref == nil || ref.UID != ds.UID || !sameData(got.Data.Raw, data) {
				return "", c.bumpCollisionCount(ctx, ds)
			}
			err = nil
		}
		if err != nil {
			return "", fmt.Errorf("creating controllerrevision %s/%s: %w", ds.Namespace, name, err)
		}
	case !sameData(cur.Data.Raw, data):
		return "", c.bumpCollisionCount(ctx, ds)
	case cur.Revision < maxRev:
		// A rollback to an earlier template: it becomes the newest again.
		upd := cur.DeepCopy()
		upd.Revision = maxRev + 1
		if _, err := client.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
			return "", fmt.Errorf("updating controllerrevision %s/%s: %w", ds.Namespace, name, err)
		}
	}
	return hash, c.truncateHistory(ctx, ds, revs, name, pods)
}

func sameData(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func (c *Controller) bumpCollisionCount(ctx context.Context, ds *appsv1.DaemonSet) error {
	upd := ds.DeepCopy()
	n := int32(0)
	if upd.Status.CollisionCount != nil {
		n = *upd.Status.CollisionCount
	}
	n++
	upd.Status.CollisionCount = &n
	if _, err := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("daemonset %s/%s: bumping collision count: %w", ds.Namespace, ds.Name, err)
	}
	return errCollision
}

// truncateHistory deletes the oldest revisions beyond the history limit
// that are neither current nor the template of a live pod.
func (c *Controller) truncateHistory(ctx context.Context, ds *appsv1.DaemonSet, revs []*appsv1.ControllerRevision, current string, pods []*corev1.Pod) error {
	limit := 10
	if ds.Spec.RevisionHistoryLimit != nil {
		limit = int(*ds.Spec.RevisionHistoryLimit)
	}
	live := map[string]bool{}
	for _, p := range pods {
		if h := p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]; h != "" {
			live[ds.Name+"-"+h] = true
		}
	}
	var old []*appsv1.ControllerRevision
	for _, r := range revs {
		if r.Name != current && !live[r.Name] {
			old = append(old, r)
		}
	}
	for i := 0; i < len(old)-limit; i++ {
		err := c.client.AppsV1().ControllerRevisions(ds.Namespace).Delete(ctx, old[i].Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting controllerrevision %s/%s: %w", ds.Namespace, old[i].Name, err)
		}
	}
	return nil
}

func withLabel(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}
