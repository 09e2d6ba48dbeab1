package cronjob

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/robfig/cron/v3"
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

// manySchedules is how many missed times are worth a TooManyMissedTimes
// event, Kubernetes' number.
const manySchedules = 100

// nextSlack is added to the wait for the next scheduled time, so the sync
// that follows finds that time past.
const nextSlack = 100 * time.Millisecond

// sync reconciles one CronJob: its status from its Jobs, the Job for the
// latest unmet scheduled time, and the history limits. It requeues itself
// for the next scheduled time.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cj, err := c.cronJobs.CronJobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	all, err := c.jobs.Jobs(ns).List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing jobs: %w", err)
	}
	var jobs []*batchv1.Job
	for _, j := range all {
		if ref := metav1.GetControllerOf(j); ref != nil && ref.UID == cj.UID {
			jobs = append(jobs, j)
		}
	}
	cj = cj.DeepCopy()
	orig := cj.Status.DeepCopy()
	if err := c.syncActive(ctx, cj, jobs); err != nil {
		return err
	}
	next, schedErr := c.schedule(ctx, cj, jobs, c.clock.Now())
	if !equality.Semantic.DeepEqual(*orig, cj.Status) {
		if err := c.updateStatus(ctx, cj); err != nil {
			return errors.Join(schedErr, err)
		}
	}
	if schedErr != nil {
		return schedErr
	}
	if cj.DeletionTimestamp == nil {
		if err := c.cleanupFinished(ctx, cj, jobs); err != nil {
			return err
		}
	}
	if next > 0 {
		c.queue.AddAfter(key, next)
	}
	return nil
}

// syncActive brings status.active and lastSuccessfulTime in line with the
// CronJob's Jobs.
func (c *Controller) syncActive(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) error {
	children := map[types.UID]bool{}
	for _, j := range jobs {
		children[j.UID] = true
		found, finished := inActive(cj, j.UID), finishedCondition(j)
		switch {
		case !found && finished == "":
			// Created by a sync whose status write was lost, or adopted:
			// it runs, and concurrencyPolicy must see it.
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnexpectedJob", "Saw a job that the controller did not create or forgot: %s", j.Name)
			cj.Status.Active = append(cj.Status.Active, jobRef(j))
		case found && finished != "":
			removeActive(cj, j.UID)
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "SawCompletedJob", "Saw completed job: %s, condition: %v", j.Name, finished)
		}
		// A Job's scheduled time is on it (its scheduled-timestamp
		// annotation), so a status write lost after its creation does not
		// lose lastScheduleTime with it.
		if ts, err := time.Parse(time.RFC3339, j.Annotations[batchv1.CronJobScheduledTimestampAnnotation]); err == nil &&
			(cj.Status.LastScheduleTime == nil || cj.Status.LastScheduleTime.Time.Before(ts)) {
			cj.Status.LastScheduleTime = &metav1.Time{Time: ts}
		}
		if finished == batchv1.JobComplete && j.Status.CompletionTime != nil &&
			(cj.Status.LastSuccessfulTime == nil || cj.Status.LastSuccessfulTime.Before(j.Status.CompletionTime)) {
			cj.Status.LastSuccessfulTime = j.Status.CompletionTime.DeepCopy()
		}
	}
	// A Job in active that the cache lacks may be newer than the cache:
	// only the API can say it is gone.
	for _, ref := range append([]corev1.ObjectReference(nil), cj.Status.Active...) {
		if children[ref.UID] {
			continue
		}
		got, err := c.client.BatchV1().Jobs(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			removeActive(cj, ref.UID)
		case err != nil:
			return fmt.Errorf("reading job %s/%s: %w", ref.Namespace, ref.Name, err)
		case got.UID != ref.UID:
			removeActive(cj, ref.UID)
		}
	}
	return nil
}

// schedule creates the Job for the latest unmet scheduled time, if it is
// due, and returns how long to wait for the next one (0: do not requeue).
func (c *Controller) schedule(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job, now time.Time) (time.Duration, error) {
	if cj.DeletionTimestamp != nil {
		return 0, nil
	}
	loc := time.UTC
	if tz := cj.Spec.TimeZone; tz != nil {
		l, err := time.LoadLocation(*tz)
		if err != nil {
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnknownTimeZone", "invalid timeZone: %q: %s", *tz, err)
			return 0, nil
		}
		loc = l
	}
	if cj.Spec.Suspend != nil && *cj.Spec.Suspend {
		return 0, nil
	}
	sched, err := cron.ParseStandard(formatSchedule(cj))
	if err != nil {
		// Validation keeps these out; an old object may still have one.
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnparseableSchedule", "unparseable schedule: %q : %s", cj.Spec.Schedule, err)
		return 0, nil
	}
	next := sched.Next(now).Sub(now) + nextSlack
	scheduled, missed := mostRecentScheduleTime(cj, now, sched)
	if scheduled.IsZero() {
		return next, nil
	}
	if missed > manySchedules {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "TooManyMissedTimes",
			"too many missed start times: %d. Set or decrease .spec.startingDeadlineSeconds or check clock skew", missed)
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil && scheduled.Add(time.Duration(*d)*time.Second).Before(now) {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "MissSchedule", "Missed scheduled time to start a job: %s",
			scheduled.UTC().Format(time.RFC1123Z))
		return next, nil
	}
	name := JobName(cj, scheduled)
	for _, j := range jobs {
		if j.Name == name {
			return next, nil // this time's Job exists already
		}
	}
	switch cj.Spec.ConcurrencyPolicy {
	case batchv1.ForbidConcurrent:
		if len(cj.Status.Active) > 0 {
			// Tried again when the running Job finishes (its event), if the
			// time is still within the starting deadline.
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "JobAlreadyActive",
				"Not starting job because prior execution is running and concurrency policy is Forbid")
			return next, nil
		}
	case batchv1.ReplaceConcurrent:
		for _, ref := range append([]corev1.ObjectReference(nil), cj.Status.Active...) {
			if err := c.deleteJob(ctx, cj, ref.Name, ref.UID); err != nil {
				return 0, err
			}
			removeActive(cj, ref.UID)
		}
	}
	job := newJob(cj, scheduled, loc)
	created, err := c.client.BatchV1().Jobs(cj.Namespace).Create(ctx, job, metav1.CreateOptions{})
	switch {
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return 0, nil
	case err != nil:
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedCreate", "Error creating job: %v", err)
		return 0, fmt.Errorf("creating job %s/%s: %w", cj.Namespace, name, err)
	}
	c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulCreate", "Created job %v", created.Name)
	cj.Status.Active = append(cj.Status.Active, jobRef(created))
	cj.Status.LastScheduleTime = &metav1.Time{Time: scheduled}
	return next, nil
}

// formatSchedule is the schedule with spec.timeZone as robfig's TZ= prefix.
func formatSchedule(cj *batchv1.CronJob) string {
	if cj.Spec.TimeZone != nil {
		return "TZ=" + *cj.Spec.TimeZone + " " + cj.Spec.Schedule
	}
	return cj.Spec.Schedule
}

// mostRecentScheduleTime is the latest scheduled time not after now and
// after the last one the CronJob ran (or its creation, or the starting
// deadline, whichever is later), zero if none; and how many were missed.
func mostRecentScheduleTime(cj *batchv1.CronJob, now time.Time, sched cron.Schedule) (time.Time, int64) {
	earliest := cj.CreationTimestamp.Time
	if cj.Status.LastScheduleTime != nil {
		earliest = cj.Status.LastScheduleTime.Time
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil {
		if dl := now.Add(-time.Duration(*d) * time.Second); dl.After(earliest) {
			earliest = dl
		}
	}
	t1 := sched.Next(earliest)
	if t1.IsZero() || t1.After(now) {
		return time.Time{}, 0
	}
	t2 := sched.Next(t1)
	if t2.IsZero() || t2.After(now) {
		return t1, 1
	}
	// Many missed: jump close to now by the interval between the first
	// two, then walk (Kubernetes' approximation; exact for regular
	// schedules).
	step := int64(t2.Sub(t1).Round(time.Second).Seconds())
	if step <= 0 {
		step = 1
	}
	missed := int64(now.Sub(t1).Seconds())/step + 1
	from := t1.Add(time.Duration((missed-2)*step) * time.Second)
	var recent time.Time
	for t := sched.Next(from); !t.IsZero() && !t.After(now); t = sched.Next(t) {
		recent = t
	}
	if recent.IsZero() {
		recent = t2
	}
	return recent, missed
}

// JobName is the name of a CronJob's Job for a scheduled time: the
// CronJob's name and the time in minutes since the epoch, so one time
// makes one Job whichever member creates it.
func JobName(cj *batchv1.CronJob, scheduled time.Time) string {
	return fmt.Sprintf("%s-%d", cj.Name, scheduled.Unix()/60)
}

// newJob is the Job for a scheduled time, from the template.
func newJob(cj *batchv1.CronJob, scheduled time.Time, loc *time.Location) *batchv1.Job {
	tpl := cj.Spec.JobTemplate
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: JobName(cj, scheduled), Namespace: cj.Namespace,
			Labels: copyMap(tpl.Labels), Annotations: copyMap(tpl.Annotations),
			OwnerReferences: []metav1.OwnerReference{*controller.NewControllerRef(cj, kind)},
		},
		Spec: *tpl.Spec.DeepCopy(),
	}
	if j.Annotations == nil {
		j.Annotations = map[string]string{}
	}
	j.Annotations[batchv1.CronJobScheduledTimestampAnnotation] = scheduled.In(loc).Format(time.RFC3339)
	return j
}

// cleanupFinished deletes the oldest finished Jobs beyond the history
// limits.
func (c *Controller) cleanupFinished(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) error {
	var ok, failed []*batchv1.Job
	for _, j := range jobs {
		switch finishedCondition(j) {
		case batchv1.JobComplete:
			ok = append(ok, j)
		case batchv1.JobFailed:
			failed = append(failed, j)
		}
	}
	var errs []error
	for _, h := range []struct {
		jobs  []*batchv1.Job
		limit *int32
	}{{ok, cj.Spec.SuccessfulJobsHistoryLimit}, {failed, cj.Spec.FailedJobsHistoryLimit}} {
		if h.limit == nil || len(h.jobs) <= int(*h.limit) {
			continue
		}
		sort.Slice(h.jobs, func(a, b int) bool { return startedBefore(h.jobs[a], h.jobs[b]) })
		for _, j := range h.jobs[:len(h.jobs)-int(*h.limit)] {
			if err := c.deleteJob(ctx, cj, j.Name, j.UID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// startedBefore orders Jobs by start time, those never started last, then
// by name.
func startedBefore(a, b *batchv1.Job) bool {
	sa, sb := a.Status.StartTime, b.Status.StartTime
	switch {
	case sa == nil && sb != nil:
		return false
	case sa != nil && sb == nil:
		return true
	case sa != nil && !sa.Equal(sb):
		return sa.Before(sb)
	}
	return a.Name < b.Name
}

// deleteJob deletes one of the CronJob's Jobs, its pods with it.
func (c *Controller) deleteJob(ctx context.Context, cj *batchv1.CronJob, name string, uid types.UID) error {
	bg := metav1.DeletePropagationBackground
	err := c.client.BatchV1().Jobs(cj.Namespace).Delete(ctx, name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &bg})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedDelete", "Deleted job: %v", err)
		return fmt.Errorf("deleting job %s/%s: %w", cj.Namespace, name, err)
	}
	c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted job %v", name)
	return nil
}

// finishedCondition is JobComplete or JobFailed when the Job finished, ""
// while it runs.
func finishedCondition(j *batchv1.Job) batchv1.JobConditionType {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.Type
		}
	}
	return ""
}

func inActive(cj *batchv1.CronJob, uid types.UID) bool {
	for _, r := range cj.Status.Active {
		if r.UID == uid {
			return true
		}
	}
	return false
}

func removeActive(cj *batchv1.CronJob, uid types.UID) {
	var keep []corev1.ObjectReference
	for _, r := range cj.Status.Active {
		if r.UID != uid {
			keep = append(keep, r)
		}
	}
	cj.Status.Active = keep
}

func jobRef(j *batchv1.Job) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "Job", APIVersion: "batch/v1", Namespace: j.Namespace, Name: j.Name,
		UID: j.UID, ResourceVersion: j.ResourceVersion}
}

// updateStatus writes the CronJob's status, once more on a fresh copy if
// the cached one was stale.
func (c *Controller) updateStatus(ctx context.Context, cj *batchv1.CronJob) error {
	client := c.client.BatchV1().CronJobs(cj.Namespace)
	st := cj.Status
	for attempt := 0; ; attempt++ {
		cj.Status = st
		_, err := client.UpdateStatus(ctx, cj, metav1.UpdateOptions{})
		if err == nil {
			return nil
		}
		if attempt == 1 || !apierrors.IsConflict(err) {
			return fmt.Errorf("updating status of cronjob %s/%s: %w", cj.Namespace, cj.Name, err)
		}
		fresh, err := client.Get(ctx, cj.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading cronjob %s/%s: %w", cj.Namespace, cj.Name, err)
		}
		if fresh.UID != cj.UID {
			return nil
		}
		cj = fresh
	}
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
