package deployment

import (
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"math"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
)

// The annotations Kubernetes' Deployment controller writes, which kubectl
// rollout history/undo and users read.
const (
	RevisionAnnotation        = "deployment.kubernetes.io/revision"
	RevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
	DesiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	MaxReplicasAnnotation     = "deployment.kubernetes.io/max-replicas"
	lastAppliedAnnotation     = corev1.LastAppliedConfigAnnotation
	rollbackToAnnotation      = "deprecated.deployment.rollback.to"
)

// Condition reasons, as Kubernetes names them (kubectl and tools match on
// them).
const (
	reasonNewRSCreated     = "NewReplicaSetCreated"
	reasonFoundNewRS       = "FoundNewReplicaSet"
	reasonRSUpdated        = "ReplicaSetUpdated"
	reasonNewRSAvailable   = "NewReplicaSetAvailable"
	reasonTimedOut         = "ProgressDeadlineExceeded"
	reasonPaused           = "DeploymentPaused"
	reasonResumed          = "DeploymentResumed"
	reasonMinAvailable     = "MinimumReplicasAvailable"
	reasonMinUnavailable   = "MinimumReplicasUnavailable"
	reasonFailedRSCreate   = "ReplicaSetCreateError"
	messageMinAvailable    = "Deployment has minimum availability."
	messageMinUnavailable  = "Deployment does not have minimum availability."
	messagePaused          = "Deployment is paused"
	messageResumed         = "Deployment is resumed"
	eventScalingReplicaSet = "ScalingReplicaSet"
)

// templateHash names a template: a stable hash of its content and of the
// Deployment's collision count (bumped when the name is taken by a
// ReplicaSet with another template), in the alphabet of rand.SafeEncodeString
// so it never spells words and is a valid label value. Encoding a
// PodTemplateSpec as JSON is deterministic (sorted map keys).
func templateHash(t *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	b, _ := json.Marshal(t)
	h.Write(b)
	if collisionCount != nil {
		var buf [4]byte
		binary.LittleEndian.PutUint32(buf[:], uint32(*collisionCount))
		h.Write(buf[:])
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// equalIgnoreHash compares templates as Kubernetes does to find a
// Deployment's ReplicaSet: all but the pod-template-hash label.
func equalIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	delete(b.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	if len(a.Labels) == 0 {
		a.Labels = nil
	}
	if len(b.Labels) == 0 {
		b.Labels = nil
	}
	return equality.Semantic.DeepEqual(a, b)
}

func replicasOf(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

func specReplicas(rs *appsv1.ReplicaSet) int32 { return replicasOf(rs.Spec.Replicas) }

// resolveFenceposts turns maxSurge (rounded up) and maxUnavailable
// (rounded down) into numbers for d's replicas. Both zero would deadlock a
// rollout, so maxUnavailable is then 1, as in Kubernetes.
func resolveFenceposts(d *appsv1.Deployment) (surge, unavailable int32) {
	ru := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil {
		return 0, 0
	}
	desired := int(replicasOf(d.Spec.Replicas))
	s, err := intstr.GetScaledValueFromIntOrPercent(intstr.ValueOrDefault(ru.MaxSurge, intstr.FromInt32(0)), desired, true)
	if err != nil {
		s = 0
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(intstr.ValueOrDefault(ru.MaxUnavailable, intstr.FromInt32(0)), desired, false)
	if err != nil {
		u = 0
	}
	if s == 0 && u == 0 {
		u = 1
	}
	return int32(s), int32(u)
}

// maxUnavailable is how many of d's replicas may be unavailable: none for
// Recreate or zero replicas, at most all of them.
func maxUnavailable(d *appsv1.Deployment) int32 {
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || replicasOf(d.Spec.Replicas) == 0 {
		return 0
	}
	_, u := resolveFenceposts(d)
	return min(u, replicasOf(d.Spec.Replicas))
}

func maxSurge(d *appsv1.Deployment) int32 {
	s, _ := resolveFenceposts(d)
	return s
}

// revision is the revision annotation of an object, 0 if none.
func revision(annotations map[string]string) int64 {
	v, err := strconv.ParseInt(annotations[RevisionAnnotation], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

func maxRevision(rss []*appsv1.ReplicaSet) int64 {
	var m int64
	for _, rs := range rss {
		m = max(m, revision(rs.Annotations))
	}
	return m
}

func intAnnotation(rs *appsv1.ReplicaSet, key string) (int32, bool) {
	v, ok := rs.Annotations[key]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, false
	}
	return int32(n), true
}

// setReplicasAnnotations records on rs the Deployment size it was scaled
// for, which proportional scaling reads back. It reports a change.
func setReplicasAnnotations(rs *appsv1.ReplicaSet, desired, maxReplicas int32) bool {
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	d, m := strconv.Itoa(int(desired)), strconv.Itoa(int(maxReplicas))
	changed := rs.Annotations[DesiredReplicasAnnotation] != d || rs.Annotations[MaxReplicasAnnotation] != m
	rs.Annotations[DesiredReplicasAnnotation], rs.Annotations[MaxReplicasAnnotation] = d, m
	return changed
}

// skipCopy are the Deployment annotations that do not belong on its
// ReplicaSets.
func skipCopy(key string) bool {
	switch key {
	case lastAppliedAnnotation, RevisionAnnotation, RevisionHistoryAnnotation, DesiredReplicasAnnotation,
		MaxReplicasAnnotation, rollbackToAnnotation:
		return true
	}
	return false
}

// copyAnnotations copies d's annotations (kubernetes.io/change-cause for
// kubectl rollout history, among others) to rs. It reports a change.
func copyAnnotations(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	changed := false
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	for k, v := range d.Annotations {
		if skipCopy(k) || rs.Annotations[k] == v {
			continue
		}
		rs.Annotations[k] = v
		changed = true
	}
	return changed
}

// setNewRSAnnotations brings the new ReplicaSet's annotations up to date:
// d's annotations, the revision (a ReplicaSet that becomes new again, as
// on a rollback, takes a new revision and remembers its old ones), and the
// sizes. It reports a change.
func setNewRSAnnotations(d *appsv1.Deployment, rs *appsv1.ReplicaSet, newRevision int64, exists bool) bool {
	changed := copyAnnotations(d, rs)
	old := rs.Annotations[RevisionAnnotation]
	if revision(rs.Annotations) < newRevision {
		rs.Annotations[RevisionAnnotation] = strconv.FormatInt(newRevision, 10)
		changed = true
		if old != "" {
			if h := rs.Annotations[RevisionHistoryAnnotation]; h != "" {
				rs.Annotations[RevisionHistoryAnnotation] = h + "," + old
			} else {
				rs.Annotations[RevisionHistoryAnnotation] = old
			}
		}
	}
	if !exists && setReplicasAnnotations(rs, replicasOf(d.Spec.Replicas), replicasOf(d.Spec.Replicas)+maxSurge(d)) {
		changed = true
	}
	return changed
}

// Sorting of ReplicaSets.

func byCreation(rss []*appsv1.ReplicaSet) {
	sort.SliceStable(rss, func(i, j int) bool {
		a, b := rss[i], rss[j]
		if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.Name < b.Name
		}
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	})
}

func byRevision(rss []*appsv1.ReplicaSet) {
	sort.SliceStable(rss, func(i, j int) bool {
		ri, rj := revision(rss[i].Annotations), revision(rss[j].Annotations)
		if ri == rj {
			return rss[i].CreationTimestamp.Before(&rss[j].CreationTimestamp)
		}
		return ri < rj
	})
}

// bySize sorts larger first; among equals newer first if newer, else
// older first.
func bySize(rss []*appsv1.ReplicaSet, newer bool) {
	sort.SliceStable(rss, func(i, j int) bool {
		a, b := rss[i], rss[j]
		if specReplicas(a) != specReplicas(b) {
			return specReplicas(a) > specReplicas(b)
		}
		if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.Name < b.Name
		}
		if newer {
			return b.CreationTimestamp.Before(&a.CreationTimestamp)
		}
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	})
}

func activeRSs(rss []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range rss {
		if rs != nil && specReplicas(rs) > 0 {
			out = append(out, rs)
		}
	}
	return out
}

func sumSpec(rss []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		if rs != nil {
			n += specReplicas(rs)
		}
	}
	return n
}

func sumStatus(rss []*appsv1.ReplicaSet, f func(*appsv1.ReplicaSetStatus) int32) int32 {
	var n int32
	for _, rs := range rss {
		if rs != nil {
			n += f(&rs.Status)
		}
	}
	return n
}

func statusReplicas(s *appsv1.ReplicaSetStatus) int32  { return s.Replicas }
func statusReady(s *appsv1.ReplicaSetStatus) int32     { return s.ReadyReplicas }
func statusAvailable(s *appsv1.ReplicaSetStatus) int32 { return s.AvailableReplicas }

// roundHalfAway rounds as math.Round does, to an int32.
func roundHalfAway(f float64) int32 { return int32(math.Round(f)) }
