package engine

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/skiffhq/skiff/internal/testutil"
)

// jobsWait bounds the waits of the Job tests: the failing Job waits out
// one 10s back-off before its second pod.
const jobsWait = 90 * time.Second

// offsetClock is the real clock moved forward by an offset the test sets:
// the CronJob controller then sees its next scheduled time come at once
// instead of at the next real minute.
type offsetClock struct {
	clock.RealClock
	off atomic.Int64
}

func (c *offsetClock) Now() time.Time                  { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

func jobSpec(image string, args []string, completions, parallelism int32) batchv1.JobSpec {
	return batchv1.JobSpec{Completions: &completions, Parallelism: &parallelism,
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "c", Image: image, Args: args}}}}}
}

func waitJob(t *testing.T, cs kubernetes.Interface, name string, ok func(*batchv1.Job) bool) *batchv1.Job {
	t.Helper()
	var got *batchv1.Job
	testutil.Eventually(t, jobsWait, func() error {
		j, err := cs.BatchV1().Jobs("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !ok(j) {
			return fmt.Errorf("job %s: status %+v", name, j.Status)
		}
		got = j
		return nil
	})
	return got
}

func jobCondition(j *batchv1.Job, ct batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if j.Status.Conditions[i].Type == ct && j.Status.Conditions[i].Status == corev1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

// Jobs and a CronJob run real Wasm pods: a Job of 3 completions, 2 at a
// time, completes; a Job whose module exits 1 fails after backoffLimit 1;
// an Indexed Job's pods see their index and hostname; a CronJob firing
// every minute creates a Job that completes.
func TestJobsRunWasmPods(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"exitcode:1": testGuest(t, "exitcode"), "printenv:1": testGuest(t, "printenv")})
	clk := &offsetClock{}
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "jobs-1", PodCIDR: "127.103.0.0/22",
		ServiceCIDR: "127.104.0.0/16", cronJobClock: clk})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	jobs := cs.BatchV1().Jobs("default")
	create := func(name string, spec batchv1.JobSpec) {
		t.Helper()
		if _, err := jobs.Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create job %s: %v", name, err)
		}
	}
	create("three", jobSpec(host+"/exitcode:1", []string{"0"}, 3, 2))
	failing := jobSpec(host+"/exitcode:1", []string{"1"}, 1, 1)
	failing.BackoffLimit = ptr[int32](1)
	create("failing", failing)
	indexed := jobSpec(host+"/printenv:1", nil, 2, 2)
	indexed.CompletionMode = ptr(batchv1.IndexedCompletion)
	create("indexed", indexed)

	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "tick"}, Spec: batchv1.CronJobSpec{Schedule: "* * * * *",
		JobTemplate: batchv1.JobTemplateSpec{Spec: jobSpec(host+"/exitcode:1", []string{"0"}, 1, 1)}}}
	cj, err = cs.BatchV1().CronJobs("default").Create(ctx, cj, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Move the controller's clock just past the CronJob's first scheduled
	// time, and wake the controller with an edit.
	sched, _ := cron.ParseStandard(cj.Spec.Schedule)
	first := sched.Next(cj.CreationTimestamp.Time)
	clk.off.Store(int64(time.Until(first) + time.Second))
	// A merge patch, not an update: the controller may have written the
	// CronJob's status since it was created.
	if _, err := cs.BatchV1().CronJobs("default").Patch(ctx, "tick", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"woken":"yes"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}

	j := waitJob(t, cs, "three", func(j *batchv1.Job) bool { return jobCondition(j, batchv1.JobComplete) != nil })
	if j.Status.Succeeded != 3 || j.Status.Failed != 0 || j.Status.Active != 0 || j.Status.CompletionTime == nil {
		t.Errorf("three: status %+v", j.Status)
	}
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=three"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 3 {
		t.Errorf("three: %d pods", len(pods.Items))
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodSucceeded || metav1.GetControllerOf(&p) == nil || metav1.GetControllerOf(&p).UID != j.UID {
			t.Errorf("three: pod %s phase %s owners %+v", p.Name, p.Status.Phase, p.OwnerReferences)
		}
	}

	for i := range 2 {
		name := fmt.Sprintf("indexed-%d", i)
		var pod string
		testutil.Eventually(t, jobsWait, func() error {
			l, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{
				LabelSelector: fmt.Sprintf("batch.kubernetes.io/job-name=indexed,batch.kubernetes.io/job-completion-index=%d", i)})
			if err != nil {
				return err
			}
			if len(l.Items) == 0 {
				return fmt.Errorf("no pod for index %d", i)
			}
			pod = l.Items[0].Name
			return nil
		})
		waitLogs(t, cs, pod, corev1.PodLogOptions{}, fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i), "HOSTNAME="+name)
	}
	j = waitJob(t, cs, "indexed", func(j *batchv1.Job) bool { return jobCondition(j, batchv1.JobComplete) != nil })
	if j.Status.CompletedIndexes != "0-1" || j.Status.Succeeded != 2 {
		t.Errorf("indexed: status %+v", j.Status)
	}

	j = waitJob(t, cs, "failing", func(j *batchv1.Job) bool { return jobCondition(j, batchv1.JobFailed) != nil })
	if c := jobCondition(j, batchv1.JobFailed); c.Reason != "BackoffLimitExceeded" || j.Status.Failed != 2 || j.Status.Succeeded != 0 {
		t.Errorf("failing: condition %+v, status %+v", c, j.Status)
	}

	name := fmt.Sprintf("tick-%d", first.Unix()/60)
	j = waitJob(t, cs, name, func(j *batchv1.Job) bool { return jobCondition(j, batchv1.JobComplete) != nil })
	if ref := metav1.GetControllerOf(j); ref == nil || ref.Kind != "CronJob" || ref.UID != cj.UID {
		t.Errorf("%s: owners %+v", name, j.OwnerReferences)
	}
	if got := j.Annotations[batchv1.CronJobScheduledTimestampAnnotation]; got != first.UTC().Format(time.RFC3339) {
		t.Errorf("%s: scheduled-timestamp %q, want %s", name, got, first.UTC().Format(time.RFC3339))
	}
	testutil.Eventually(t, jobsWait, func() error {
		got, err := cs.BatchV1().CronJobs("default").Get(ctx, "tick", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.LastScheduleTime == nil || got.Status.LastSuccessfulTime == nil {
			return fmt.Errorf("cronjob status %+v", got.Status)
		}
		return nil
	})
}
