package cronjob

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiffhq/skiff/internal/testutil"
)

// created is the CronJobs' creation time in these tests: 10:00:30 UTC.
var created = time.Date(2026, 3, 4, 10, 0, 30, 0, time.UTC)

type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	c        *Controller
	clock    *clocktesting.FakeClock
	cronJobs cache.Indexer
	jobs     cache.Indexer
	events   *record.FakeRecorder
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	client := fake.NewClientset(objs...)
	client.PrependReactor("create", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		j := a.(k8stesting.CreateAction).GetObject().(*batchv1.Job)
		j.UID = types.UID("uid-" + j.Name)
		return false, nil, nil
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	events := record.NewFakeRecorder(1000)
	clk := clocktesting.NewFakeClock(created)
	c, err := New(Config{Client: client, CronJobs: factory.Batch().V1().CronJobs(), Jobs: factory.Batch().V1().Jobs(),
		Recorder: events, Clock: clk, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, client: client, c: c, clock: clk, events: events,
		cronJobs: factory.Batch().V1().CronJobs().Informer().GetIndexer(), jobs: factory.Batch().V1().Jobs().Informer().GetIndexer()}
}

func (f *fixture) refresh() {
	f.t.Helper()
	ctx := context.Background()
	cjs, err := f.client.BatchV1().CronJobs("").List(ctx, metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	var l []any
	for i := range cjs.Items {
		l = append(l, &cjs.Items[i])
	}
	if err := f.cronJobs.Replace(l, ""); err != nil {
		f.t.Fatal(err)
	}
	l = nil
	for _, j := range f.jobList() {
		l = append(l, j)
	}
	if err := f.jobs.Replace(l, ""); err != nil {
		f.t.Fatal(err)
	}
}

// sync syncs the CronJob with the clock at at, and returns it.
func (f *fixture) sync(name string, at time.Time) *batchv1.CronJob {
	f.t.Helper()
	f.clock.SetTime(at)
	f.refresh()
	if err := f.c.sync(context.Background(), "default/"+name); err != nil {
		f.t.Fatalf("sync: %v", err)
	}
	cj, err := f.client.BatchV1().CronJobs("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return cj
}

func (f *fixture) jobList() []*batchv1.Job {
	f.t.Helper()
	l, err := f.client.BatchV1().Jobs("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []*batchv1.Job
	for i := range l.Items {
		out = append(out, &l.Items[i])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (f *fixture) jobNames() []string {
	var out []string
	for _, j := range f.jobList() {
		out = append(out, j.Name)
	}
	return out
}

// finishJob marks a Job Complete (or Failed) at the clock's time.
func (f *fixture) finishJob(name string, ct batchv1.JobConditionType) {
	f.t.Helper()
	ctx := context.Background()
	j, err := f.client.BatchV1().Jobs("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	now := metav1.Time{Time: f.clock.Now()}
	j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: ct, Status: corev1.ConditionTrue, LastTransitionTime: now})
	if ct == batchv1.JobComplete {
		j.Status.CompletionTime = &now
	}
	if _, err := f.client.BatchV1().Jobs("default").UpdateStatus(ctx, j, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) hasEvent(substr string) bool {
	for {
		select {
		case e := <-f.events.Events:
			if strings.Contains(e, substr) {
				return true
			}
		default:
			return false
		}
	}
}

func newCronJob(name, schedule string) *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("cj-uid-" + name),
			CreationTimestamp: metav1.Time{Time: created}},
		Spec: batchv1.CronJobSpec{
			Schedule: schedule, ConcurrencyPolicy: batchv1.AllowConcurrent, Suspend: ptr(false),
			SuccessfulJobsHistoryLimit: ptr[int32](3), FailedJobsHistoryLimit: ptr[int32](1),
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "tick"}, Annotations: map[string]string{"note": "x"}},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "c", Image: "example.invalid/tick:1"}}}}},
			},
		},
	}
}

func minute(m int) time.Time {
	return created.Truncate(time.Minute).Add(time.Duration(m) * time.Minute)
}

func ptr[T any](v T) *T { return &v }

// Every minute: nothing before the first scheduled time, then one Job per
// time, named by the minutes since the epoch, owned, with the template's
// labels and annotations and the scheduled-time annotation.
func TestCronJobCreatesJobs(t *testing.T) {
	f := newFixture(t, newCronJob("tick", "* * * * *"))
	cj := f.sync("tick", created.Add(20*time.Second))
	if len(f.jobList()) != 0 || cj.Status.LastScheduleTime != nil {
		t.Fatalf("jobs %v before the first time", f.jobNames())
	}
	cj = f.sync("tick", minute(1).Add(2*time.Second))
	jobs := f.jobList()
	if len(jobs) != 1 {
		t.Fatalf("jobs %v", f.jobNames())
	}
	j := jobs[0]
	if want := "tick-" + formatInt(minute(1).Unix()/60); j.Name != want {
		t.Fatalf("job name %q, want %q", j.Name, want)
	}
	if ref := metav1.GetControllerOf(j); ref == nil || ref.Kind != "CronJob" || ref.UID != cj.UID {
		t.Fatalf("owner %+v", j.OwnerReferences)
	}
	if j.Labels["app"] != "tick" || j.Annotations["note"] != "x" ||
		j.Annotations[batchv1.CronJobScheduledTimestampAnnotation] != minute(1).Format(time.RFC3339) {
		t.Fatalf("labels %v annotations %v", j.Labels, j.Annotations)
	}
	if len(cj.Status.Active) != 1 || cj.Status.Active[0].Name != j.Name || cj.Status.LastScheduleTime == nil ||
		!cj.Status.LastScheduleTime.Time.Equal(minute(1)) {
		t.Fatalf("status %+v", cj.Status)
	}
	if !f.hasEvent("SuccessfulCreate Created job " + j.Name) {
		t.Fatal("no SuccessfulCreate event")
	}
	// The same minute again: nothing new.
	if f.sync("tick", minute(1).Add(30*time.Second)); len(f.jobList()) != 1 {
		t.Fatalf("jobs %v", f.jobNames())
	}
	// Allow: the next minute's Job runs beside the first.
	cj = f.sync("tick", minute(2).Add(time.Second))
	if len(f.jobList()) != 2 || len(cj.Status.Active) != 2 {
		t.Fatalf("jobs %v, active %v", f.jobNames(), cj.Status.Active)
	}
	// A Job that finished leaves active and sets lastSuccessfulTime.
	f.finishJob(j.Name, batchv1.JobComplete)
	cj = f.sync("tick", minute(2).Add(10*time.Second))
	if len(cj.Status.Active) != 1 || cj.Status.LastSuccessfulTime == nil || !cj.Status.LastSuccessfulTime.Time.Equal(minute(2).Add(time.Second)) {
		t.Fatalf("status %+v", cj.Status)
	}
	// A Job deleted by hand leaves active.
	if err := f.client.BatchV1().Jobs("default").Delete(context.Background(), cj.Status.Active[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if cj = f.sync("tick", minute(2).Add(20*time.Second)); len(cj.Status.Active) != 0 {
		t.Fatalf("active %v", cj.Status.Active)
	}
}

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }

// Forbid: no new Job while one runs; the missed time runs when it ends,
// if still in time.
func TestCronJobForbid(t *testing.T) {
	cj := newCronJob("fb", "* * * * *")
	cj.Spec.ConcurrencyPolicy = batchv1.ForbidConcurrent
	f := newFixture(t, cj)
	f.sync("fb", minute(1))
	first := f.jobNames()[0]
	got := f.sync("fb", minute(2).Add(time.Second))
	if len(f.jobList()) != 1 || !f.hasEvent("JobAlreadyActive") {
		t.Fatalf("jobs %v", f.jobNames())
	}
	if !got.Status.LastScheduleTime.Time.Equal(minute(1)) {
		t.Fatalf("lastScheduleTime %v", got.Status.LastScheduleTime)
	}
	f.finishJob(first, batchv1.JobComplete)
	f.sync("fb", minute(2).Add(5*time.Second))
	if names := f.jobNames(); len(names) != 2 || names[1] != "fb-"+formatInt(minute(2).Unix()/60) {
		t.Fatalf("jobs %v", names)
	}
}

// Replace: the running Job is deleted for the new one.
func TestCronJobReplace(t *testing.T) {
	cj := newCronJob("rp", "* * * * *")
	cj.Spec.ConcurrencyPolicy = batchv1.ReplaceConcurrent
	f := newFixture(t, cj)
	f.sync("rp", minute(1))
	got := f.sync("rp", minute(2))
	want := "rp-" + formatInt(minute(2).Unix()/60)
	if names := f.jobNames(); len(names) != 1 || names[0] != want {
		t.Fatalf("jobs %v", names)
	}
	if len(got.Status.Active) != 1 || got.Status.Active[0].Name != want {
		t.Fatalf("active %v", got.Status.Active)
	}
}

// startingDeadlineSeconds: a time missed by more is skipped (MissSchedule).
func TestCronJobStartingDeadline(t *testing.T) {
	cj := newCronJob("late", "* * * * *")
	cj.Spec.StartingDeadlineSeconds = ptr[int64](10)
	f := newFixture(t, cj)
	f.sync("late", minute(1).Add(30*time.Second))
	if len(f.jobList()) != 0 {
		t.Fatalf("jobs %v", f.jobNames())
	}
	f.sync("late", minute(2).Add(5*time.Second))
	if len(f.jobList()) != 1 {
		t.Fatalf("jobs %v", f.jobNames())
	}
}

// A suspended CronJob creates nothing.
func TestCronJobSuspend(t *testing.T) {
	cj := newCronJob("off", "* * * * *")
	cj.Spec.Suspend = ptr(true)
	f := newFixture(t, cj)
	if f.sync("off", minute(5)); len(f.jobList()) != 0 {
		t.Fatalf("jobs %v", f.jobNames())
	}
}

// timeZone: 09:00 in Tokyo is 00:00 UTC; the annotation is in the zone.
func TestCronJobTimeZone(t *testing.T) {
	cj := newCronJob("tz", "0 9 * * *")
	cj.Spec.TimeZone = ptr("Asia/Tokyo")
	f := newFixture(t, cj)
	at := time.Date(2026, 3, 5, 0, 0, 10, 0, time.UTC)
	f.sync("tz", at)
	jobs := f.jobList()
	if len(jobs) != 1 || jobs[0].Name != "tz-"+formatInt(at.Truncate(time.Minute).Unix()/60) ||
		jobs[0].Annotations[batchv1.CronJobScheduledTimestampAnnotation] != "2026-03-05T09:00:00+09:00" {
		t.Fatalf("jobs %v", jobs)
	}
}

// The history limits keep the newest finished Jobs.
func TestCronJobHistoryLimits(t *testing.T) {
	cj := newCronJob("hist", "* * * * *")
	cj.Spec.SuccessfulJobsHistoryLimit = ptr[int32](2)
	cj.Spec.FailedJobsHistoryLimit = ptr[int32](1)
	f := newFixture(t, cj)
	var names []string
	for m := 1; m <= 6; m++ {
		f.sync("hist", minute(m))
		name := "hist-" + formatInt(minute(m).Unix()/60)
		names = append(names, name)
		j, err := f.client.BatchV1().Jobs("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		j.Status.StartTime = &metav1.Time{Time: minute(m)}
		if _, err := f.client.BatchV1().Jobs("default").UpdateStatus(context.Background(), j, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		ct := batchv1.JobComplete
		if m%2 == 0 {
			ct = batchv1.JobFailed
		}
		f.finishJob(name, ct)
	}
	f.sync("hist", minute(6).Add(30*time.Second))
	got := f.jobNames()
	want := []string{names[2], names[4], names[5]} // succeeded: the 3rd and 5th; failed: the 6th
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("jobs %v, want %v", got, want)
	}
}

// Many missed times: the latest one is found, without walking them all.
func TestMostRecentScheduleTime(t *testing.T) {
	sched, err := cron.ParseStandard("*/5 * * * *")
	if err != nil {
		t.Fatal(err)
	}
	cj := newCronJob("x", "*/5 * * * *")
	now := created.Add(1000*time.Hour + 7*time.Minute)
	got, missed := mostRecentScheduleTime(cj, now, sched)
	if want := now.Truncate(5 * time.Minute); !got.Equal(want) || missed < manySchedules {
		t.Fatalf("got %v (%d missed), want %v", got, missed, want)
	}
	if got, _ := mostRecentScheduleTime(cj, created.Add(time.Minute), sched); !got.IsZero() {
		t.Fatalf("got %v before the first time", got)
	}
}
