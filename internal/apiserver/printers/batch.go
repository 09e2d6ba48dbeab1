package printers

import (
	"fmt"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
)

// Printers of the batch and autoscaling groups.
func init() {
	register("batch", "Job", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Status", "string", "Status of the job."),
		col("Completions", "string", batchv1.JobStatus{}.SwaggerDoc()["succeeded"]),
		col("Duration", "string", "Time required to complete the job."),
		ageColumn,
		containersColumn,
		imagesColumn,
		wide("Selector", "string", batchv1.JobSpec{}.SwaggerDoc()["selector"]),
	}, jobCells))
	register("batch", "CronJob", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Schedule", "string", batchv1.CronJobSpec{}.SwaggerDoc()["schedule"]),
		col("Timezone", "string", batchv1.CronJobSpec{}.SwaggerDoc()["timeZone"]),
		col("Suspend", "boolean", batchv1.CronJobSpec{}.SwaggerDoc()["suspend"]),
		col("Active", "integer", batchv1.CronJobStatus{}.SwaggerDoc()["active"]),
		col("Last Schedule", "string", batchv1.CronJobStatus{}.SwaggerDoc()["lastScheduleTime"]),
		ageColumn,
		containersColumn,
		imagesColumn,
		wide("Selector", "string", batchv1.JobSpec{}.SwaggerDoc()["selector"]),
	}, func(cj *batchv1.CronJob, now time.Time) []any {
		last := "<none>"
		if t := cj.Status.LastScheduleTime; t != nil {
			last = age(*t, now)
		}
		tz := "<none>"
		if cj.Spec.TimeZone != nil {
			tz = *cj.Spec.TimeZone
		}
		// Kubernetes prints Suspend as the string True/False despite the
		// column's boolean type; unset is the API default, false.
		suspend := "False"
		if cj.Spec.Suspend != nil && *cj.Spec.Suspend {
			suspend = "True"
		}
		tmpl := cj.Spec.JobTemplate.Spec
		names, images := containerCells(tmpl.Template.Spec.Containers)
		return []any{
			cj.Name, cj.Spec.Schedule, tz, suspend, int64(len(cj.Status.Active)), last,
			age(cj.CreationTimestamp, now),
			names, images, metav1.FormatLabelSelector(tmpl.Selector),
		}
	}))
	register("autoscaling", "HorizontalPodAutoscaler", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Reference", "string", autoscalingv2.HorizontalPodAutoscalerSpec{}.SwaggerDoc()["scaleTargetRef"]),
		col("Targets", "string", autoscalingv2.HorizontalPodAutoscalerSpec{}.SwaggerDoc()["metrics"]),
		col("MinPods", "string", autoscalingv2.HorizontalPodAutoscalerSpec{}.SwaggerDoc()["minReplicas"]),
		col("MaxPods", "string", autoscalingv2.HorizontalPodAutoscalerSpec{}.SwaggerDoc()["maxReplicas"]),
		col("Replicas", "string", autoscalingv2.HorizontalPodAutoscalerStatus{}.SwaggerDoc()["currentReplicas"]),
		ageColumn,
	}, func(h *autoscalingv2.HorizontalPodAutoscaler, now time.Time) []any {
		minPods := "<unset>"
		if h.Spec.MinReplicas != nil {
			minPods = fmt.Sprint(*h.Spec.MinReplicas)
		}
		ref := h.Spec.ScaleTargetRef
		return []any{
			h.Name, ref.Kind + "/" + ref.Name, hpaTargets(h.Spec.Metrics, h.Status.CurrentMetrics),
			minPods, int64(h.Spec.MaxReplicas), int64(h.Status.CurrentReplicas),
			age(h.CreationTimestamp, now),
		}
	}))
}

func jobCells(j *batchv1.Job, now time.Time) []any {
	var completions string
	switch {
	case j.Spec.Completions != nil:
		completions = fmt.Sprintf("%d/%d", j.Status.Succeeded, *j.Spec.Completions)
	case j.Spec.Parallelism != nil && *j.Spec.Parallelism > 1:
		// A work queue: one success completes it, many pods work on it.
		completions = fmt.Sprintf("%d/1 of %d", j.Status.Succeeded, *j.Spec.Parallelism)
	default:
		completions = fmt.Sprintf("%d/1", j.Status.Succeeded)
	}
	var took string
	if start := j.Status.StartTime; start != nil {
		end := now
		if j.Status.CompletionTime != nil {
			end = j.Status.CompletionTime.Time
		}
		took = duration.HumanDuration(end.Sub(start.Time))
	}
	var status string
	switch {
	case jobCondition(j, batchv1.JobComplete):
		status = "Complete"
	case jobCondition(j, batchv1.JobFailed):
		status = "Failed"
	case j.DeletionTimestamp != nil:
		status = "Terminating"
	case jobCondition(j, batchv1.JobSuspended):
		status = "Suspended"
	case jobCondition(j, batchv1.JobFailureTarget):
		status = "FailureTarget"
	case jobCondition(j, batchv1.JobSuccessCriteriaMet):
		status = "SuccessCriteriaMet"
	default:
		status = "Running"
	}
	names, images := containerCells(j.Spec.Template.Spec.Containers)
	return []any{
		j.Name, status, completions, took, age(j.CreationTimestamp, now),
		names, images, metav1.FormatLabelSelector(j.Spec.Selector),
	}
}

// jobCondition reports whether the job's first condition of type typ is
// True.
func jobCondition(j *batchv1.Job, typ batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == typ {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// hpaTargets is the TARGETS cell: "current/target" per metric, matched to
// its status by position, at most two then "+ N more...". Current values
// not yet measured are <unknown>.
func hpaTargets(specs []autoscalingv2.MetricSpec, statuses []autoscalingv2.MetricStatus) string {
	if len(specs) == 0 {
		return "<none>"
	}
	const maxShown = 2
	status := func(i int) *autoscalingv2.MetricStatus {
		if i < len(statuses) {
			return &statuses[i]
		}
		return nil
	}
	var list []string
	for i, spec := range specs {
		if len(list) == maxShown {
			break
		}
		st := status(i)
		var item string
		switch {
		case spec.Type == autoscalingv2.ExternalMetricSourceType && spec.External != nil:
			var cur *autoscalingv2.MetricValueStatus
			if st != nil && st.External != nil {
				cur = &st.External.Current
			}
			item = valueTarget(spec.External.Target, cur)
		case spec.Type == autoscalingv2.PodsMetricSourceType && spec.Pods != nil:
			current := "<unknown>"
			if st != nil && st.Pods != nil {
				current = quantity(st.Pods.Current.AverageValue)
			}
			item = current + "/" + quantity(spec.Pods.Target.AverageValue)
		case spec.Type == autoscalingv2.ObjectMetricSourceType && spec.Object != nil:
			var cur *autoscalingv2.MetricValueStatus
			if st != nil && st.Object != nil {
				cur = &st.Object.Current
			}
			item = valueTarget(spec.Object.Target, cur)
		case spec.Type == autoscalingv2.ResourceMetricSourceType && spec.Resource != nil:
			var cur *autoscalingv2.MetricValueStatus
			if st != nil && st.Resource != nil {
				cur = &st.Resource.Current
			}
			item = resourceTarget(spec.Resource.Name, spec.Resource.Target, cur)
		case spec.Type == autoscalingv2.ContainerResourceMetricSourceType && spec.ContainerResource != nil:
			var cur *autoscalingv2.MetricValueStatus
			if st != nil && st.ContainerResource != nil {
				cur = &st.ContainerResource.Current
			}
			item = resourceTarget(spec.ContainerResource.Name, spec.ContainerResource.Target, cur)
		default:
			item = "<unknown type>"
		}
		list = append(list, item)
	}
	s := strings.Join(list, ", ")
	if len(specs) > maxShown {
		s += fmt.Sprintf(" + %d more...", len(specs)-maxShown)
	}
	return s
}

// valueTarget formats an external or object metric: an average value
// ("cur/target (avg)") or a plain value ("cur/target").
func valueTarget(target autoscalingv2.MetricTarget, cur *autoscalingv2.MetricValueStatus) string {
	current := "<unknown>"
	if target.AverageValue != nil {
		if cur != nil && cur.AverageValue != nil {
			current = cur.AverageValue.String()
		}
		return current + "/" + target.AverageValue.String() + " (avg)"
	}
	if cur != nil {
		current = quantity(cur.Value)
	}
	return current + "/" + quantity(target.Value)
}

// resourceTarget formats a (container) resource metric: "cpu: 40%/80%" for
// utilization, "memory: 1Gi/2Gi" for an average value.
func resourceTarget(name corev1.ResourceName, target autoscalingv2.MetricTarget, cur *autoscalingv2.MetricValueStatus) string {
	current := "<unknown>"
	if target.AverageValue != nil {
		if cur != nil {
			current = quantity(cur.AverageValue)
		}
		return fmt.Sprintf("%s: %s/%s", name, current, target.AverageValue.String())
	}
	if cur != nil && cur.AverageUtilization != nil {
		current = fmt.Sprintf("%d%%", *cur.AverageUtilization)
	}
	want := "<auto>"
	if target.AverageUtilization != nil {
		want = fmt.Sprintf("%d%%", *target.AverageUtilization)
	}
	return fmt.Sprintf("%s: %s/%s", name, current, want)
}

// quantity prints q; Kubernetes prints a missing one as <nil>.
func quantity(q *resource.Quantity) string {
	return q.String() // nil-safe: "<nil>"
}
