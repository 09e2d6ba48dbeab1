package job

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fixture runs the controller's sync by hand against a fake clientset,
// copying the clientset's objects into the informers' caches (and calling
// the pod handlers, as the informer would) before each sync.
type fixture struct {
	t      *testing.T
	client *fake.Clientset
	c      *Controller
	clock  *clocktesting.FakeClock
	jobs   cache.Indexer
	pods   cache.Indexer
	events *record.FakeRecorder
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	client := fake.NewClientset(objs...)
	var n atomic.Int64
	client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		if p.Name == "" {
			p.Name = fmt.Sprintf("%s%05d", p.GenerateName, n.Add(1))
		}
		p.UID = types.UID("uid-" + p.Name)
		p.CreationTimestamp = metav1.Time{Time: t0.Add(time.Duration(n.Load()) * time.Millisecond)}
		return false, nil, nil
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	events := record.NewFakeRecorder(1000)
	clk := clocktesting.NewFakeClock(t0)
	c, err := New(Config{Client: client, Pods: factory.Core().V1().Pods(), Jobs: factory.Batch().V1().Jobs(),
		Recorder: events, Clock: clk, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, client: client, c: c, clock: clk, events: events,
		jobs: factory.Batch().V1().Jobs().Informer().GetIndexer(), pods: factory.Core().V1().Pods().Informer().GetIndexer()}
}

// refresh makes the caches what the clientset holds.
func (f *fixture) refresh() {
	f.t.Helper()
	ctx := context.Background()
	jobs, err := f.client.BatchV1().Jobs("").List(ctx, metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	var jl []any
	for i := range jobs.Items {
		jl = append(jl, &jobs.Items[i])
	}
	if err := f.jobs.Replace(jl, ""); err != nil {
		f.t.Fatal(err)
	}
	pods, err := f.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := range pods.Items {
		p := &pods.Items[i]
		key := p.Namespace + "/" + p.Name
		seen[key] = true
		old, ok, _ := f.pods.GetByKey(key)
		if !ok {
			_ = f.pods.Add(p)
			f.c.podEvents.OnAdd(p, false)
			continue
		}
		_ = f.pods.Update(p)
		if op := old.(*corev1.Pod); op.ResourceVersion != p.ResourceVersion || op.Status.Phase != p.Status.Phase {
			f.c.podEvents.OnUpdate(op, p)
		}
	}
	for _, obj := range f.pods.List() {
		p := obj.(*corev1.Pod)
		if !seen[p.Namespace+"/"+p.Name] {
			_ = f.pods.Delete(p)
			f.c.podEvents.OnDelete(p)
		}
	}
}

func (f *fixture) sync(name string) *batchv1.Job {
	f.t.Helper()
	f.refresh()
	if err := f.c.sync(context.Background(), "default/"+name); err != nil {
		f.t.Fatalf("sync: %v", err)
	}
	j, err := f.client.BatchV1().Jobs("default").Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

// pods lists the Job's pods, by name.
func (f *fixture) podList() []*corev1.Pod {
	f.t.Helper()
	l, err := f.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []*corev1.Pod
	for i := range l.Items {
		out = append(out, &l.Items[i])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (f *fixture) active() []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range f.podList() {
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			out = append(out, p)
		}
	}
	return out
}

// finish ends a pod with its container's exit code.
func (f *fixture) finish(p *corev1.Pod, code int32) {
	f.t.Helper()
	p = p.DeepCopy()
	p.Status.Phase = corev1.PodSucceeded
	if code != 0 {
		p.Status.Phase = corev1.PodFailed
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: code, FinishedAt: metav1.Time{Time: f.clock.Now()}}}}}
	p.ResourceVersion += "1"
	if _, err := f.client.CoreV1().Pods("default").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

func newJob(name string, completions, parallelism *int32) *batchv1.Job {
	uid := types.UID("job-uid-" + name)
	lbl := map[string]string{"batch.kubernetes.io/controller-uid": string(uid), "batch.kubernetes.io/job-name": name,
		"controller-uid": string(uid), "job-name": name}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: uid},
		Spec: batchv1.JobSpec{
			Completions: completions, Parallelism: parallelism, BackoffLimit: ptr[int32](6),
			CompletionMode: ptr(batchv1.NonIndexedCompletion), Suspend: ptr(false),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"batch.kubernetes.io/controller-uid": string(uid)}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbl},
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "c", Image: "example.invalid/work:1"}}},
			},
		},
	}
}

func condition(j *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	return findCondition(j.Status.Conditions, t)
}

func wantCondition(t *testing.T, j *batchv1.Job, ct batchv1.JobConditionType, reason string) {
	t.Helper()
	c := condition(j, ct)
	if c == nil || c.Status != corev1.ConditionTrue || c.Reason != reason {
		t.Fatalf("condition %s = %+v, want True %s; all %+v", ct, c, reason, j.Status.Conditions)
	}
}

func noCondition(t *testing.T, j *batchv1.Job, types ...batchv1.JobConditionType) {
	t.Helper()
	for _, ct := range types {
		if c := condition(j, ct); c != nil {
			t.Fatalf("unexpected condition %+v", c)
		}
	}
}

// completions 3, parallelism 2: two pods at once, a third when two
// succeeded, then SuccessCriteriaMet and Complete with a completion time.
func TestJobCompletions(t *testing.T) {
	job := newJob("work", ptr[int32](3), ptr[int32](2))
	f := newFixture(t, job)
	j := f.sync("work")
	pods := f.active()
	if len(pods) != 2 || j.Status.Active != 2 || j.Status.StartTime == nil || !j.Status.StartTime.Time.Equal(t0) {
		t.Fatalf("%d pods, status %+v", len(pods), j.Status)
	}
	for _, p := range pods {
		ref := metav1.GetControllerOf(p)
		if ref == nil || ref.UID != job.UID || ref.Kind != "Job" || ref.APIVersion != "batch/v1" || !*ref.BlockOwnerDeletion {
			t.Fatalf("pod %s owner %+v", p.Name, p.OwnerReferences)
		}
		if p.GenerateName != "work-" || p.Labels["batch.kubernetes.io/job-name"] != "work" || p.Labels["controller-uid"] != string(job.UID) {
			t.Fatalf("pod %s: generateName %q labels %v", p.Name, p.GenerateName, p.Labels)
		}
		if p.Spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Fatalf("pod %s restartPolicy %q", p.Name, p.Spec.RestartPolicy)
		}
	}
	// Synced again with nothing new: no more pods.
	if f.sync("work"); len(f.active()) != 2 {
		t.Fatalf("%d pods after a second sync", len(f.active()))
	}
	f.finish(pods[0], 0)
	f.finish(pods[1], 0)
	j = f.sync("work")
	if len(f.active()) != 1 || j.Status.Succeeded != 2 {
		t.Fatalf("%d active pods, status %+v", len(f.active()), j.Status)
	}
	noCondition(t, j, batchv1.JobComplete, batchv1.JobSuccessCriteriaMet)
	f.clock.Step(time.Minute)
	f.finish(f.active()[0], 0)
	j = f.sync("work")
	wantCondition(t, j, batchv1.JobSuccessCriteriaMet, "CompletionsReached")
	wantCondition(t, j, batchv1.JobComplete, "CompletionsReached")
	if j.Status.Succeeded != 3 || j.Status.Active != 0 || j.Status.CompletionTime == nil || !j.Status.CompletionTime.Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("status %+v", j.Status)
	}
	if len(f.podList()) != 3 {
		t.Fatalf("%d pods in all", len(f.podList()))
	}
}

// No completions: a work queue, done once a pod succeeded and the others
// ended; no new pod starts after the first success.
func TestJobWorkQueue(t *testing.T) {
	f := newFixture(t, newJob("q", nil, ptr[int32](2)))
	f.sync("q")
	pods := f.active()
	if len(pods) != 2 {
		t.Fatalf("%d pods", len(pods))
	}
	f.finish(pods[0], 0)
	j := f.sync("q")
	if len(f.active()) != 1 {
		t.Fatalf("%d active pods", len(f.active()))
	}
	noCondition(t, j, batchv1.JobComplete)
	f.finish(pods[1], 0)
	j = f.sync("q")
	wantCondition(t, j, batchv1.JobComplete, "CompletionsReached")
}

// A failed pod is replaced after the back-off; one failure more than
// backoffLimit fails the Job with BackoffLimitExceeded.
func TestJobBackoffLimit(t *testing.T) {
	job := newJob("fail", ptr[int32](1), ptr[int32](1))
	job.Spec.BackoffLimit = ptr[int32](1)
	f := newFixture(t, job)
	f.sync("fail")
	f.finish(f.active()[0], 1)
	j := f.sync("fail")
	if j.Status.Failed != 1 || len(f.active()) != 0 {
		t.Fatalf("status %+v, %d active", j.Status, len(f.active()))
	}
	noCondition(t, j, batchv1.JobFailed, batchv1.JobFailureTarget)
	f.clock.Step(DefaultBackoff - time.Second)
	if f.sync("fail"); len(f.active()) != 0 {
		t.Fatal("replaced before the back-off ended")
	}
	f.clock.Step(time.Second)
	if f.sync("fail"); len(f.active()) != 1 {
		t.Fatalf("%d active pods after the back-off", len(f.active()))
	}
	f.finish(f.active()[0], 1)
	j = f.sync("fail")
	wantCondition(t, j, batchv1.JobFailureTarget, "BackoffLimitExceeded")
	wantCondition(t, j, batchv1.JobFailed, "BackoffLimitExceeded")
	if c := condition(j, batchv1.JobFailed); c.Message != "Job has reached the specified backoff limit" {
		t.Fatalf("message %q", c.Message)
	}
	if j.Status.Failed != 2 || j.Status.CompletionTime != nil {
		t.Fatalf("status %+v", j.Status)
	}
	if !hasEvent(f, "Warning BackoffLimitExceeded") {
		t.Fatal("no BackoffLimitExceeded event")
	}
	// Finished: nothing more happens.
	f.clock.Step(time.Hour)
	if f.sync("fail"); len(f.active()) != 0 {
		t.Fatal("a finished Job started a pod")
	}
}

// Under restartPolicy OnFailure the containers' restarts count against the
// backoff limit.
func TestJobBackoffLimitOnFailure(t *testing.T) {
	job := newJob("restarts", ptr[int32](1), ptr[int32](1))
	job.Spec.BackoffLimit = ptr[int32](2)
	job.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	f := newFixture(t, job)
	f.sync("restarts")
	p := f.active()[0].DeepCopy()
	p.Status.Phase = corev1.PodRunning
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", RestartCount: 2}}
	if _, err := f.client.CoreV1().Pods("default").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	j := f.sync("restarts")
	wantCondition(t, j, batchv1.JobFailureTarget, "BackoffLimitExceeded")
	if len(f.podList()) != 0 {
		t.Fatalf("the failing Job's pod was not deleted: %d pods", len(f.podList()))
	}
	j = f.sync("restarts")
	wantCondition(t, j, batchv1.JobFailed, "BackoffLimitExceeded")
}

// Indexed: one pod per index, with the index in an annotation, a label,
// the hostname and JOB_COMPLETION_INDEX; a failed index gets a new pod,
// completed ones are listed in completedIndexes.
func TestJobIndexed(t *testing.T) {
	job := newJob("idx", ptr[int32](3), ptr[int32](2))
	job.Spec.CompletionMode = ptr(batchv1.IndexedCompletion)
	f := newFixture(t, job)
	f.sync("idx")
	pods := f.active()
	if len(pods) != 2 {
		t.Fatalf("%d pods", len(pods))
	}
	got := map[string]*corev1.Pod{}
	for _, p := range pods {
		i := p.Annotations[CompletionIndexAnnotation]
		got[i] = p
		if p.Labels[CompletionIndexLabel] != i || p.Spec.Hostname != "idx-"+i || p.GenerateName != "idx-"+i+"-" {
			t.Fatalf("pod %s: labels %v hostname %q generateName %q", p.Name, p.Labels, p.Spec.Hostname, p.GenerateName)
		}
		env := p.Spec.Containers[0].Env
		if len(env) != 1 || env[0].Name != CompletionIndexEnv || env[0].ValueFrom == nil || env[0].ValueFrom.FieldRef == nil ||
			env[0].ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
			t.Fatalf("pod %s env %+v", p.Name, env)
		}
	}
	if got["0"] == nil || got["1"] == nil {
		t.Fatalf("indexes %v", got)
	}
	f.finish(got["1"], 0)
	f.finish(got["0"], 3)
	j := f.sync("idx")
	if j.Status.CompletedIndexes != "1" || j.Status.Succeeded != 1 || j.Status.Failed != 1 {
		t.Fatalf("status %+v", j.Status)
	}
	f.clock.Step(DefaultBackoff)
	f.sync("idx")
	idx := map[string]bool{}
	for _, p := range f.active() {
		idx[p.Annotations[CompletionIndexAnnotation]] = true
	}
	if len(idx) != 2 || !idx["0"] || !idx["2"] {
		t.Fatalf("active indexes %v", idx)
	}
	for _, p := range f.active() {
		f.finish(p, 0)
	}
	j = f.sync("idx")
	wantCondition(t, j, batchv1.JobComplete, "CompletionsReached")
	if j.Status.CompletedIndexes != "0-2" || j.Status.Succeeded != 3 {
		t.Fatalf("status %+v", j.Status)
	}
}

// activeDeadlineSeconds: past it, the pods are deleted and the Job fails
// with DeadlineExceeded.
func TestJobActiveDeadline(t *testing.T) {
	job := newJob("slow", ptr[int32](1), ptr[int32](1))
	job.Spec.ActiveDeadlineSeconds = ptr[int64](30)
	f := newFixture(t, job)
	f.sync("slow")
	f.clock.Step(29 * time.Second)
	if j := f.sync("slow"); condition(j, batchv1.JobFailureTarget) != nil || len(f.active()) != 1 {
		t.Fatalf("failed early: %+v", j.Status)
	}
	f.clock.Step(time.Second)
	j := f.sync("slow")
	wantCondition(t, j, batchv1.JobFailureTarget, "DeadlineExceeded")
	if len(f.podList()) != 0 {
		t.Fatal("pods not deleted")
	}
	j = f.sync("slow")
	wantCondition(t, j, batchv1.JobFailed, "DeadlineExceeded")
	if c := condition(j, batchv1.JobFailed); c.Message != "Job was active longer than specified deadline" {
		t.Fatalf("message %q", c.Message)
	}
}

// suspend deletes the pods and says Suspended; resuming starts pods again
// and the deadline counts from then.
func TestJobSuspend(t *testing.T) {
	job := newJob("sus", ptr[int32](2), ptr[int32](2))
	job.Spec.Suspend = ptr(true)
	f := newFixture(t, job)
	j := f.sync("sus")
	if len(f.podList()) != 0 || j.Status.StartTime != nil {
		t.Fatalf("a suspended Job started: %+v", j.Status)
	}
	wantCondition(t, j, batchv1.JobSuspended, "JobSuspended")
	j.Spec.Suspend = ptr(false)
	if _, err := f.client.BatchV1().Jobs("default").Update(context.Background(), j, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.clock.Step(time.Minute)
	j = f.sync("sus")
	if c := condition(j, batchv1.JobSuspended); c == nil || c.Status != corev1.ConditionFalse || c.Reason != "JobResumed" {
		t.Fatalf("Suspended = %+v", c)
	}
	if len(f.active()) != 2 || j.Status.StartTime == nil || !j.Status.StartTime.Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("%d pods, status %+v", len(f.active()), j.Status)
	}
	j.Spec.Suspend = ptr(true)
	if _, err := f.client.BatchV1().Jobs("default").Update(context.Background(), j, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	j = f.sync("sus")
	wantCondition(t, j, batchv1.JobSuspended, "JobSuspended")
	if len(f.podList()) != 0 {
		t.Fatalf("%d pods of a suspended Job", len(f.podList()))
	}
}

// ttlSecondsAfterFinished: the finished Job is deleted that long after it
// finished.
func TestJobTTLAfterFinished(t *testing.T) {
	job := newJob("ttl", ptr[int32](1), ptr[int32](1))
	job.Spec.TTLSecondsAfterFinished = ptr[int32](30)
	f := newFixture(t, job)
	f.sync("ttl")
	f.finish(f.active()[0], 0)
	j := f.sync("ttl")
	wantCondition(t, j, batchv1.JobComplete, "CompletionsReached")
	f.clock.Step(29 * time.Second)
	if j = f.sync("ttl"); j == nil {
		t.Fatal("deleted before its ttl")
	}
	f.clock.Step(time.Second)
	if j = f.sync("ttl"); j != nil {
		t.Fatalf("not deleted after its ttl: %+v", j.Status)
	}
}

// podFailurePolicy: Ignore does not count a failure, FailJob fails the Job
// at once, Count counts as usual.
func TestJobPodFailurePolicy(t *testing.T) {
	job := newJob("pfp", ptr[int32](1), ptr[int32](1))
	job.Spec.BackoffLimit = ptr[int32](3)
	job.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionIgnore, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
			Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{137}}},
		{Action: batchv1.PodFailurePolicyActionCount, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
			Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{1}}},
		{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
			ContainerName: ptr("c"), Operator: batchv1.PodFailurePolicyOnExitCodesOpNotIn, Values: []int32{1, 137}}},
	}}
	f := newFixture(t, job)
	f.sync("pfp")
	f.finish(f.active()[0], 137)
	j := f.sync("pfp")
	if j.Status.Failed != 0 || len(f.active()) != 1 {
		t.Fatalf("an ignored failure: status %+v, %d active", j.Status, len(f.active()))
	}
	f.finish(f.active()[0], 1)
	j = f.sync("pfp")
	if j.Status.Failed != 1 {
		t.Fatalf("a counted failure: status %+v", j.Status)
	}
	noCondition(t, j, batchv1.JobFailureTarget)
	f.clock.Step(DefaultBackoff)
	f.sync("pfp")
	f.finish(f.active()[0], 42)
	j = f.sync("pfp")
	wantCondition(t, j, batchv1.JobFailed, "PodFailurePolicy")
	if msg := condition(j, batchv1.JobFailed).Message; !strings.Contains(msg, "exit code 42") || !strings.Contains(msg, "FailJob rule at index 2") {
		t.Fatalf("message %q", msg)
	}
}

// An orphan pod the selector matches is adopted.
func TestJobAdoptsOrphans(t *testing.T) {
	job := newJob("adopt", ptr[int32](1), ptr[int32](1))
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: "default", UID: "orphan-uid",
		Labels: job.Spec.Template.Labels}}
	f := newFixture(t, job, orphan)
	j := f.sync("adopt")
	if len(f.podList()) != 1 || j.Status.Active != 1 {
		t.Fatalf("%d pods, status %+v", len(f.podList()), j.Status)
	}
	if ref := metav1.GetControllerOf(f.podList()[0]); ref == nil || ref.UID != job.UID {
		t.Fatalf("orphan not adopted: %+v", f.podList()[0].OwnerReferences)
	}
}

func TestFormatIndexes(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{{nil, ""}, {[]int{0}, "0"}, {[]int{0, 1, 2}, "0-2"}, {[]int{1, 3, 4, 5, 7}, "1,3-5,7"}, {[]int{9, 2, 3}, "2-3,9"}} {
		set := map[int]bool{}
		for _, i := range tc.in {
			set[i] = true
		}
		if got := formatIndexes(set); got != tc.want {
			t.Errorf("formatIndexes(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func hasEvent(f *fixture, prefix string) bool {
	for {
		select {
		case e := <-f.events.Events:
			if strings.HasPrefix(e, prefix) {
				return true
			}
		default:
			return false
		}
	}
}

// A Job another controller manages (spec.managedBy) is left alone.
func TestJobManagedByAnother(t *testing.T) {
	job := newJob("other", ptr[int32](1), ptr[int32](1))
	job.Spec.ManagedBy = ptr("example.com/queue")
	f := newFixture(t, job)
	if j := f.sync("other"); len(f.podList()) != 0 || j.Status.StartTime != nil {
		t.Fatalf("%d pods, status %+v", len(f.podList()), j.Status)
	}
}

// An Indexed Job keeps one pod per index: a second pod for an index is
// deleted.
func TestJobIndexedDuplicate(t *testing.T) {
	job := newJob("dup", ptr[int32](2), ptr[int32](2))
	job.Spec.CompletionMode = ptr(batchv1.IndexedCompletion)
	f := newFixture(t, job)
	f.sync("dup")
	p := f.active()[0].DeepCopy()
	p.Name, p.UID, p.ResourceVersion = "dup-extra", "dup-extra-uid", ""
	if _, err := f.client.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.sync("dup")
	idx := map[string]int{}
	for _, p := range f.active() {
		idx[p.Annotations[CompletionIndexAnnotation]]++
	}
	if len(f.active()) != 2 || idx["0"] != 1 || idx["1"] != 1 {
		t.Fatalf("indexes %v", idx)
	}
}
