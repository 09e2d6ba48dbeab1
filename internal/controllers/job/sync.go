package job

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// BurstPods bounds the pods one sync creates or deletes; the next sync
// does the rest.
const BurstPods = 500

// The delay before a failed Job's next pod grows from DefaultBackoff,
// doubling with each failure, up to MaxBackoff, as in Kubernetes.
const (
	DefaultBackoff = 10 * time.Second
	MaxBackoff     = 6 * time.Minute
)

// The reasons and messages of the Job's conditions, Kubernetes' own.
const (
	reasonBackoffLimit    = "BackoffLimitExceeded"
	reasonDeadline        = "DeadlineExceeded"
	reasonPodFailure      = "PodFailurePolicy"
	reasonCompletions     = "CompletionsReached"
	msgBackoffLimit       = "Job has reached the specified backoff limit"
	msgDeadline           = "Job was active longer than specified deadline"
	msgCompletions        = "Reached expected number of succeeded pods"
	reasonSuspended       = "JobSuspended"
	reasonResumed         = "JobResumed"
	indexAnnotationEnvRef = "metadata.annotations['" + CompletionIndexAnnotation + "']"
)

// sync reconciles one Job: its pods, then its status.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	job, err := c.jobs.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.expect.Delete(key)
		return nil
	}
	if err != nil {
		return err
	}
	if m := job.Spec.ManagedBy; m != nil && *m != batchv1.JobControllerName {
		return nil // another controller's, as spec.managedBy says
	}
	if IsFinished(job) {
		return c.expire(ctx, key, job)
	}
	needsSync := c.expect.Satisfied(key)
	sel, err := metav1.LabelSelectorAsSelector(job.Spec.Selector)
	if err != nil || sel.Empty() {
		c.log.Warn("job has an unusable selector", "job", key, "err", err)
		return nil
	}
	all, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	pods, err := c.claimPods(ctx, job, sel, all)
	if err != nil {
		return err
	}
	job = job.DeepCopy()
	now := c.clock.Now()
	st := job.Status.DeepCopy()
	s := summarize(job, pods)

	st.Active = int32(len(s.active))
	st.Ready = ptr(int32(s.ready))
	st.Terminating = ptr(int32(len(s.terminating)))
	st.Succeeded, st.Failed = int32(s.succeeded), int32(s.failed)
	if isIndexed(job) {
		st.CompletedIndexes = formatIndexes(s.succeededIdx)
	}
	suspended := job.Spec.Suspend != nil && *job.Spec.Suspend

	// A Job that met its end gets FailureTarget or SuccessCriteriaMet at
	// once, and Failed or Complete once its pods are gone.
	if findCondition(st.Conditions, batchv1.JobFailureTarget) == nil && findCondition(st.Conditions, batchv1.JobSuccessCriteriaMet) == nil {
		reason, msg := s.failReason, s.failMessage
		if reason == "" && (s.failed > int(backoffLimit(job)) || pastBackoffLimitOnFailure(job, s.active)) {
			reason, msg = reasonBackoffLimit, msgBackoffLimit
		}
		if reason == "" && !suspended && pastDeadline(job, now) {
			reason, msg = reasonDeadline, msgDeadline
		}
		switch {
		case reason != "":
			setCondition(st, batchv1.JobFailureTarget, corev1.ConditionTrue, reason, msg, now)
		case complete(job, s):
			setCondition(st, batchv1.JobSuccessCriteriaMet, corev1.ConditionTrue, reasonCompletions, msgCompletions, now)
		}
	}

	var manageErr error
	delta := 0 // pods created less pods deleted: the status counts them as Kubernetes does
	switch {
	case job.DeletionTimestamp != nil:
	case findCondition(st.Conditions, batchv1.JobFailureTarget) != nil || findCondition(st.Conditions, batchv1.JobSuccessCriteriaMet) != nil:
		if needsSync {
			delta, manageErr = c.deletePods(ctx, job, key, s.active)
		}
		if len(s.active) == 0 && len(s.terminating) == 0 {
			c.finish(job, st, now)
		}
	case suspended:
		if needsSync {
			delta, manageErr = c.deletePods(ctx, job, key, s.active)
		}
		if cond := findCondition(st.Conditions, batchv1.JobSuspended); cond == nil || cond.Status != corev1.ConditionTrue {
			setCondition(st, batchv1.JobSuspended, corev1.ConditionTrue, reasonSuspended, "Job suspended", now)
			c.recorder.Event(job, corev1.EventTypeNormal, "Suspended", "Job suspended")
		}
	default:
		if cond := findCondition(st.Conditions, batchv1.JobSuspended); cond != nil && cond.Status == corev1.ConditionTrue {
			// Resumed: the deadline counts from now.
			setCondition(st, batchv1.JobSuspended, corev1.ConditionFalse, reasonResumed, "Job resumed", now)
			c.recorder.Event(job, corev1.EventTypeNormal, "Resumed", "Job resumed")
			st.StartTime = nil
		}
		if st.StartTime == nil {
			st.StartTime = &metav1.Time{Time: now}
		}
		if ads := job.Spec.ActiveDeadlineSeconds; ads != nil {
			c.queue.AddAfter(key, st.StartTime.Add(time.Duration(*ads)*time.Second).Sub(now))
		}
		if needsSync {
			delta, manageErr = c.manage(ctx, job, key, s, now)
		}
	}
	st.Active = int32(max(len(s.active)+delta, 0))
	if err := c.updateStatus(ctx, job, *st); err != nil {
		return errors.Join(manageErr, err)
	}
	return manageErr
}

// finish writes the terminal condition that the interim one announced.
func (c *Controller) finish(job *batchv1.Job, st *batchv1.JobStatus, now time.Time) {
	if ft := findCondition(st.Conditions, batchv1.JobFailureTarget); ft != nil {
		setCondition(st, batchv1.JobFailed, corev1.ConditionTrue, ft.Reason, ft.Message, now)
		c.recorder.Event(job, corev1.EventTypeWarning, ft.Reason, ft.Message)
		return
	}
	sc := findCondition(st.Conditions, batchv1.JobSuccessCriteriaMet)
	setCondition(st, batchv1.JobComplete, corev1.ConditionTrue, sc.Reason, sc.Message, now)
	st.CompletionTime = &metav1.Time{Time: now}
	c.recorder.Event(job, corev1.EventTypeNormal, "Completed", "Job completed")
}

// expire deletes a finished Job ttlSecondsAfterFinished after it finished
// (Kubernetes' TTL-after-finished controller); its pods go with it.
func (c *Controller) expire(ctx context.Context, key string, job *batchv1.Job) error {
	ttl := job.Spec.TTLSecondsAfterFinished
	if ttl == nil || job.DeletionTimestamp != nil {
		return nil
	}
	finished := FinishTime(job)
	if finished.IsZero() {
		return nil
	}
	if left := finished.Add(time.Duration(*ttl) * time.Second).Sub(c.clock.Now()); left > 0 {
		c.queue.AddAfter(key, left)
		return nil
	}
	bg := metav1.DeletePropagationBackground
	err := c.client.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &job.UID}, PropagationPolicy: &bg})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting expired job %s: %w", key, err)
	}
	c.log.Debug("deleted finished job after its ttl", "job", key)
	return nil
}

// IsFinished reports whether the Job is Complete or Failed.
func IsFinished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// FinishTime is when the Job became Complete or Failed (zero if it did
// not).
func FinishTime(j *batchv1.Job) time.Time {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// summary is what a Job's claimed pods say.
type summary struct {
	active, terminating []*corev1.Pod
	ready               int
	succeeded, failed   int
	succeededIdx        map[int]bool // Indexed: the completed indexes
	lastFailure         time.Time
	// failReason is set when the pod failure policy fails the Job.
	failReason, failMessage string
}

func summarize(job *batchv1.Job, pods []*corev1.Pod) summary {
	s := summary{succeededIdx: map[int]bool{}}
	indexed := isIndexed(job)
	for _, p := range pods {
		finished := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		switch {
		case p.DeletionTimestamp != nil:
			// On its way out, and then forgotten (see the package doc):
			// counted neither as active nor as finished.
			if !finished {
				s.terminating = append(s.terminating, p)
			}
		case p.Status.Phase == corev1.PodSucceeded:
			if !indexed {
				s.succeeded++
			} else if i := podIndex(p); i >= 0 && i < int(completions(job)) {
				s.succeededIdx[i] = true
			}
		case p.Status.Phase == corev1.PodFailed:
			action, msg := matchPodFailurePolicy(job.Spec.PodFailurePolicy, p)
			if action == batchv1.PodFailurePolicyActionIgnore {
				continue
			}
			if action == batchv1.PodFailurePolicyActionFailJob && s.failReason == "" {
				s.failReason, s.failMessage = reasonPodFailure, msg
			}
			s.failed++
			if t := finishedAt(p); t.After(s.lastFailure) {
				s.lastFailure = t
			}
		default:
			s.active = append(s.active, p)
			if controller.IsPodReady(p) {
				s.ready++
			}
		}
	}
	if indexed {
		s.succeeded = len(s.succeededIdx)
	}
	return s
}

// complete reports whether the Job's success criteria are met.
func complete(job *batchv1.Job, s summary) bool {
	if job.Spec.Completions == nil {
		// A work queue: done once one pod succeeded and the others ended.
		return s.succeeded > 0 && len(s.active) == 0
	}
	return s.succeeded >= int(*job.Spec.Completions)
}

func isIndexed(job *batchv1.Job) bool {
	return job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion
}

func completions(job *batchv1.Job) int32 {
	if job.Spec.Completions == nil {
		return 0
	}
	return *job.Spec.Completions
}

func parallelism(job *batchv1.Job) int32 {
	if job.Spec.Parallelism == nil {
		return 1
	}
	return *job.Spec.Parallelism
}

func backoffLimit(job *batchv1.Job) int32 {
	if job.Spec.BackoffLimit == nil {
		return 6
	}
	return *job.Spec.BackoffLimit
}

// pastBackoffLimitOnFailure counts the restarts of the active pods'
// containers against the backoff limit under restartPolicy OnFailure,
// where failing containers restart in place and pods never fail.
func pastBackoffLimitOnFailure(job *batchv1.Job, active []*corev1.Pod) bool {
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	var restarts int32
	for _, p := range active {
		for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			restarts += cs.RestartCount
		}
	}
	limit := backoffLimit(job)
	if limit == 0 {
		return restarts > 0
	}
	return restarts >= limit
}

func pastDeadline(job *batchv1.Job, now time.Time) bool {
	ads := job.Spec.ActiveDeadlineSeconds
	if ads == nil || job.Status.StartTime == nil {
		return false
	}
	return !now.Before(job.Status.StartTime.Add(time.Duration(*ads) * time.Second))
}

// podIndex is an Indexed Job pod's completion index, or -1.
func podIndex(p *corev1.Pod) int {
	v, ok := p.Annotations[CompletionIndexAnnotation]
	if !ok {
		v, ok = p.Labels[CompletionIndexLabel]
	}
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 {
		return -1
	}
	return i
}

// finishedAt is when a finished pod's last container ended, or failing
// that when the pod was created.
func finishedAt(p *corev1.Pod) time.Time {
	var t time.Time
	for _, cs := range p.Status.ContainerStatuses {
		if term := cs.State.Terminated; term != nil && term.FinishedAt.After(t) {
			t = term.FinishedAt.Time
		}
	}
	if t.IsZero() {
		t = p.CreationTimestamp.Time
	}
	return t
}

// formatIndexes is status.completedIndexes: ascending, runs as "a-b",
// separated by commas ("1,3-5,7").
func formatIndexes(set map[int]bool) string {
	idx := make([]int, 0, len(set))
	for i := range set {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var out []byte
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if len(out) > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendInt(out, int64(idx[i]), 10)
		if j > i {
			out = append(out, '-')
			out = strconv.AppendInt(out, int64(idx[j]), 10)
		}
		i = j + 1
	}
	return string(out)
}

func (c *Controller) claimPods(ctx context.Context, job *batchv1.Job, sel labels.Selector, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	pc := c.client.CoreV1().Pods(job.Namespace)
	cl := &controller.Claimer{Owner: job, Kind: kind, Selector: sel,
		CanAdopt: func(ctx context.Context) error {
			fresh, err := c.client.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			return controller.CheckOwner(job, fresh)
		},
		Patch: func(ctx context.Context, name string, patch []byte) error {
			_, err := pc.Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
	}
	return controller.Claim(ctx, cl, pods)
}

// manage creates and deletes pods so that as many run as the Job wants:
// spec.parallelism, fewer when fewer completions are left, none while the
// back-off after a failure lasts.
func (c *Controller) manage(ctx context.Context, job *batchv1.Job, key string, s summary, now time.Time) (int, error) {
	want := int(parallelism(job))
	switch {
	case job.Spec.Completions != nil:
		want = min(want, max(int(*job.Spec.Completions)-s.succeeded, 0))
	case s.succeeded > 0:
		want = len(s.active) // a work queue that has a success starts no more
	}
	active := s.active
	var surplus []*corev1.Pod
	if isIndexed(job) {
		active, surplus = c.sortIndexed(job, s)
	}
	if len(active) > want {
		controller.SortForDeletion(active)
		surplus = append(surplus, active[:len(active)-want]...)
		active = active[len(active)-want:]
	}
	if len(surplus) > 0 {
		return c.deletePods(ctx, job, key, surplus)
	}
	n := min(want-len(active), BurstPods)
	if n <= 0 {
		return 0, nil
	}
	if s.failed > 0 {
		delay := min(DefaultBackoff<<min(s.failed-1, 16), MaxBackoff)
		if left := s.lastFailure.Add(delay).Sub(now); left > 0 {
			c.queue.AddAfter(key, left)
			return 0, nil
		}
	}
	indexes := make([]int, n)
	for i := range indexes {
		indexes[i] = -1
	}
	if isIndexed(job) {
		indexes = freeIndexes(job, s.succeededIdx, active, n)
	}
	return c.createPods(ctx, job, key, indexes)
}

// sortIndexed splits an Indexed Job's active pods into those to keep and
// those to delete: a second pod for an index, a pod without a valid index,
// a pod for an index that already succeeded.
func (c *Controller) sortIndexed(job *batchv1.Job, s summary) (keep, surplus []*corev1.Pod) {
	seen := map[int]bool{}
	pods := append([]*corev1.Pod(nil), s.active...)
	sort.Slice(pods, func(i, j int) bool { return pods[i].CreationTimestamp.Before(&pods[j].CreationTimestamp) })
	for _, p := range pods {
		i := podIndex(p)
		if i < 0 || i >= int(completions(job)) || seen[i] || s.succeededIdx[i] {
			surplus = append(surplus, p)
			continue
		}
		seen[i] = true
		keep = append(keep, p)
	}
	return keep, surplus
}

// freeIndexes is the n lowest indexes that neither succeeded nor have an
// active pod.
func freeIndexes(job *batchv1.Job, done map[int]bool, active []*corev1.Pod, n int) []int {
	busy := map[int]bool{}
	for _, p := range active {
		busy[podIndex(p)] = true
	}
	var out []int
	for i := 0; i < int(completions(job)) && len(out) < n; i++ {
		if !done[i] && !busy[i] {
			out = append(out, i)
		}
	}
	return out
}

// newPod is the Job's pod for a completion index (-1: NonIndexed).
func newPod(job *batchv1.Job, index int) (*corev1.Pod, error) {
	prefix := job.Name + "-"
	if index >= 0 {
		prefix = fmt.Sprintf("%s-%d-", job.Name, index)
	}
	pod, err := controller.PodFromTemplate(&job.Spec.Template, job.Namespace, prefix, controller.NewControllerRef(job, kind))
	if err != nil {
		return nil, err
	}
	if index < 0 {
		return pod, nil
	}
	v := strconv.Itoa(index)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[CompletionIndexAnnotation] = v
	pod.Labels[CompletionIndexLabel] = v
	if pod.Spec.Hostname == "" {
		pod.Spec.Hostname = fmt.Sprintf("%s-%d", job.Name, index)
	}
	env := corev1.EnvVar{Name: CompletionIndexEnv, ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: indexAnnotationEnvRef}}}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			list[i].Env = append(list[i].Env, env)
		}
	}
	return pod, nil
}

// createPods creates one pod per entry of indexes, in parallel, and
// returns how many it created.
func (c *Controller) createPods(ctx context.Context, job *batchv1.Job, key string, indexes []int) (int, error) {
	// Expect first: the informer may see a pod before Create returns.
	c.expect.ExpectCreations(key, len(indexes))
	errs := make([]error, len(indexes))
	var wg sync.WaitGroup
	for n, index := range indexes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[n] = c.createPod(ctx, job, index)
			if errs[n] != nil {
				c.expect.CreationObserved(key) // it will never be seen
			}
		}()
	}
	wg.Wait()
	return countNil(errs), errors.Join(errs...)
}

func countNil(errs []error) int {
	n := 0
	for _, err := range errs {
		if err == nil {
			n++
		}
	}
	return n
}

func (c *Controller) createPod(ctx context.Context, job *batchv1.Job, index int) error {
	pod, err := newPod(job, index)
	if err != nil {
		return err
	}
	created, err := c.client.CoreV1().Pods(job.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		c.recorder.Eventf(job, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		return fmt.Errorf("creating pod for job %s/%s: %w", job.Namespace, job.Name, err)
	}
	c.recorder.Eventf(job, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", created.Name)
	return nil
}

// deletePods deletes pods (at most BurstPods), in parallel, and returns
// minus how many it deleted.
func (c *Controller) deletePods(ctx context.Context, job *batchv1.Job, key string, pods []*corev1.Pod) (int, error) {
	if len(pods) == 0 {
		return 0, nil
	}
	pods = pods[:min(len(pods), BurstPods)]
	keys := make([]string, len(pods))
	for i, p := range pods {
		keys[i] = controller.PodKey(p)
	}
	c.expect.ExpectDeletions(key, keys)
	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
				Preconditions: &metav1.Preconditions{UID: &p.UID}})
			switch {
			case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
				c.expect.DeletionObserved(key, keys[i]) // already gone
			case err != nil:
				c.expect.DeletionObserved(key, keys[i])
				c.recorder.Eventf(job, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
				errs[i] = fmt.Errorf("deleting pod %s: %w", keys[i], err)
			default:
				c.recorder.Eventf(job, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
			}
		}()
	}
	wg.Wait()
	return -countNil(errs), errors.Join(errs...)
}

func findCondition(cs []batchv1.JobCondition, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range cs {
		if cs[i].Type == t {
			return &cs[i]
		}
	}
	return nil
}

// setCondition sets a condition, keeping its transition time when its
// status does not change.
func setCondition(st *batchv1.JobStatus, t batchv1.JobConditionType, status corev1.ConditionStatus, reason, msg string, now time.Time) {
	if c := findCondition(st.Conditions, t); c != nil {
		if c.Status != status {
			c.LastTransitionTime = metav1.Time{Time: now}
		}
		c.Status, c.Reason, c.Message, c.LastProbeTime = status, reason, msg, metav1.Time{Time: now}
		return
	}
	st.Conditions = append(st.Conditions, batchv1.JobCondition{Type: t, Status: status, Reason: reason, Message: msg,
		LastProbeTime: metav1.Time{Time: now}, LastTransitionTime: metav1.Time{Time: now}})
}

// updateStatus writes st unless the Job already says it, retrying once on
// a fresh copy if the cached Job was stale.
func (c *Controller) updateStatus(ctx context.Context, job *batchv1.Job, st batchv1.JobStatus) error {
	if equality.Semantic.DeepEqual(job.Status, st) {
		return nil
	}
	client := c.client.BatchV1().Jobs(job.Namespace)
	for attempt := 0; ; attempt++ {
		job.Status = st
		_, err := client.UpdateStatus(ctx, job, metav1.UpdateOptions{})
		if err == nil || attempt == 1 || !apierrors.IsConflict(err) {
			if err != nil {
				return fmt.Errorf("updating status of job %s/%s: %w", job.Namespace, job.Name, err)
			}
			return nil
		}
		fresh, err := client.Get(ctx, job.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading job %s/%s: %w", job.Namespace, job.Name, err)
		}
		if fresh.UID != job.UID {
			return nil
		}
		job = fresh
	}
}

func ptr[T any](v T) *T { return &v }
