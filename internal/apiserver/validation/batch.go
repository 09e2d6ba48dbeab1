package validation

import (
	"fmt"
	"strings"
	"time"

	// Time zones must resolve without a system zoneinfo database, as in
	// kube-apiserver, which embeds it too.
	_ "time/tzdata"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The labels Kubernetes puts on a Job's pods and selects them by.
const (
	jobControllerUIDLabel       = "batch.kubernetes.io/controller-uid"
	jobNameLabel                = "batch.kubernetes.io/job-name"
	legacyJobControllerUIDLabel = "controller-uid"
	legacyJobNameLabel          = "job-name"
)

// GenerateJobSelector does for a new Job what the Kubernetes job strategy
// does on create: unless spec.manualSelector is true, it labels the pod
// template with the job's uid and name and makes spec.selector select the
// uid. The uid must already be set; call it after assigning the uid and
// before ValidateCreate, which rejects a selector that is not the generated
// one.
func GenerateJobSelector(job *batchv1.Job) {
	if job == nil || job.Spec.ManualSelector != nil && *job.Spec.ManualSelector {
		return
	}
	uid := string(job.UID)
	if job.Spec.Template.Labels == nil {
		job.Spec.Template.Labels = map[string]string{}
	}
	// Labels the user set win; validation then reports any conflict.
	for k, v := range map[string]string{
		jobControllerUIDLabel: uid, jobNameLabel: job.Name,
		legacyJobControllerUIDLabel: uid, legacyJobNameLabel: job.Name,
	} {
		if _, ok := job.Spec.Template.Labels[k]; !ok {
			job.Spec.Template.Labels[k] = v
		}
	}
	if job.Spec.Selector == nil {
		job.Spec.Selector = &metav1.LabelSelector{}
	}
	if job.Spec.Selector.MatchLabels == nil {
		job.Spec.Selector.MatchLabels = map[string]string{}
	}
	if _, ok := job.Spec.Selector.MatchLabels[jobControllerUIDLabel]; !ok {
		job.Spec.Selector.MatchLabels[jobControllerUIDLabel] = uid
	}
}

// validateJob is ValidateJob and ValidateJobUpdate.
func validateJob(job, old *batchv1.Job) field.ErrorList {
	sp := field.NewPath("spec")
	spec := &job.Spec
	errs := validateJobSpec(spec, sp)
	if spec.Selector == nil {
		errs = append(errs, field.Required(sp.Child("selector"), ""))
	} else {
		errs = append(errs, labelSelector(spec.Selector, sp.Child("selector"))...)
	}
	if selector, err := metav1.LabelSelectorAsSelector(spec.Selector); err == nil && spec.Selector != nil &&
		!selector.Matches(labels.Set(spec.Template.Labels)) {
		errs = append(errs, field.Invalid(sp.Child("template", "metadata", "labels"), spec.Template.Labels, selectorMismatchMsg))
	}
	if old == nil {
		errs = append(errs, validateGeneratedSelector(job)...)
		return errs
	}

	errs = append(errs, immutable(spec.Selector, old.Spec.Selector, sp.Child("selector"))...)
	errs = append(errs, immutable(spec.CompletionMode, old.Spec.CompletionMode, sp.Child("completionMode"))...)
	errs = append(errs, immutable(spec.PodFailurePolicy, old.Spec.PodFailurePolicy, sp.Child("podFailurePolicy"))...)
	errs = append(errs, immutable(spec.BackoffLimitPerIndex, old.Spec.BackoffLimitPerIndex, sp.Child("backoffLimitPerIndex"))...)
	errs = append(errs, immutable(spec.ManagedBy, old.Spec.ManagedBy, sp.Child("managedBy"))...)

	// Completions is fixed, except that an Indexed job whose completions
	// equal its parallelism may be scaled (elastic indexed jobs).
	elastic := spec.CompletionMode != nil && *spec.CompletionMode == batchv1.IndexedCompletion &&
		spec.Completions != nil && spec.Parallelism != nil && *spec.Completions == *spec.Parallelism &&
		old.Spec.Completions != nil && old.Spec.Parallelism != nil && *old.Spec.Completions == *old.Spec.Parallelism
	if !elastic {
		errs = append(errs, immutable(spec.Completions, old.Spec.Completions, sp.Child("completions"))...)
	}

	// The template is fixed, except that a suspended job that never started
	// may still get new scheduling directives.
	next, prev := spec.Template.DeepCopy(), old.Spec.Template.DeepCopy()
	if old.Spec.Suspend != nil && *old.Spec.Suspend && old.Status.StartTime == nil {
		next.Labels, next.Annotations = prev.Labels, prev.Annotations
		next.Spec.NodeSelector, next.Spec.Tolerations = prev.Spec.NodeSelector, prev.Spec.Tolerations
		next.Spec.Affinity, next.Spec.SchedulingGates = prev.Spec.Affinity, prev.Spec.SchedulingGates
	}
	if !semanticEqual(next, prev) {
		errs = append(errs, field.Invalid(sp.Child("template"), "<template omitted>", immutableMsg))
	}
	return errs
}

// validateGeneratedSelector is ValidateGeneratedSelector: unless the user
// chose the selector, it must be the one GenerateJobSelector makes.
func validateGeneratedSelector(job *batchv1.Job) field.ErrorList {
	if job.Spec.ManualSelector != nil && *job.Spec.ManualSelector || job.Spec.Selector == nil {
		return nil
	}
	var errs field.ErrorList
	if job.UID == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "uid"), ""))
	}
	tp := field.NewPath("spec", "template", "metadata")
	for k, want := range map[string]string{legacyJobControllerUIDLabel: string(job.UID), legacyJobNameLabel: job.Name} {
		if got, ok := job.Spec.Template.Labels[k]; !ok {
			errs = append(errs, field.Required(tp.Child("labels").Key(k), "must be '"+want+"'"))
		} else if got != want {
			errs = append(errs, field.Invalid(tp.Child("labels").Key(k), got, "must be '"+want+"'"))
		}
	}
	expected := labels.Set{
		legacyJobControllerUIDLabel: string(job.UID), legacyJobNameLabel: job.Name,
		jobControllerUIDLabel: string(job.UID), jobNameLabel: job.Name,
	}
	if selector, err := metav1.LabelSelectorAsSelector(job.Spec.Selector); err == nil && !selector.Matches(expected) {
		errs = append(errs, field.Invalid(field.NewPath("spec", "selector"), job.Spec.Selector, "`selector` not auto-generated"))
	}
	return errs
}

// maxIndexedJobSize caps completions and parallelism of Indexed jobs.
const maxIndexedJobSize = 100000

// validateJobSpec is validateJobSpec, shared by Jobs and CronJob templates.
func validateJobSpec(spec *batchv1.JobSpec, sp *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, nonNegativePtr(spec.Parallelism, sp.Child("parallelism"))...)
	errs = append(errs, nonNegativePtr(spec.Completions, sp.Child("completions"))...)
	errs = append(errs, nonNegativePtr(spec.ActiveDeadlineSeconds, sp.Child("activeDeadlineSeconds"))...)
	errs = append(errs, nonNegativePtr(spec.BackoffLimit, sp.Child("backoffLimit"))...)
	errs = append(errs, nonNegativePtr(spec.TTLSecondsAfterFinished, sp.Child("ttlSecondsAfterFinished"))...)
	indexed := false
	if spec.CompletionMode != nil {
		errs = append(errs, enum(*spec.CompletionMode, sp.Child("completionMode"),
			batchv1.NonIndexedCompletion, batchv1.IndexedCompletion)...)
		indexed = *spec.CompletionMode == batchv1.IndexedCompletion
	}
	if indexed {
		if spec.Completions == nil {
			errs = append(errs, field.Required(sp.Child("completions"), "when completion mode is Indexed"))
		} else if *spec.Completions > maxIndexedJobSize {
			errs = append(errs, field.Invalid(sp.Child("completions"), *spec.Completions,
				fmt.Sprintf("must be less than or equal to %d when completion mode is Indexed", maxIndexedJobSize)))
		}
		if spec.Parallelism != nil && *spec.Parallelism > maxIndexedJobSize {
			errs = append(errs, field.Invalid(sp.Child("parallelism"), *spec.Parallelism,
				fmt.Sprintf("must be less than or equal to %d when completion mode is Indexed", maxIndexedJobSize)))
		}
	}
	if spec.BackoffLimitPerIndex != nil {
		errs = append(errs, nonNegative(int64(*spec.BackoffLimitPerIndex), sp.Child("backoffLimitPerIndex"))...)
		if !indexed {
			errs = append(errs, field.Forbidden(sp.Child("backoffLimitPerIndex"), "requires indexed completion mode"))
		}
	}
	if spec.MaxFailedIndexes != nil {
		errs = append(errs, nonNegative(int64(*spec.MaxFailedIndexes), sp.Child("maxFailedIndexes"))...)
		if spec.BackoffLimitPerIndex == nil {
			errs = append(errs, field.Required(sp.Child("backoffLimitPerIndex"), "when maxFailedIndexes is specified"))
		}
		if spec.Completions != nil && *spec.MaxFailedIndexes > *spec.Completions {
			errs = append(errs, field.Invalid(sp.Child("maxFailedIndexes"), *spec.MaxFailedIndexes, "must be less than or equal to completions"))
		}
	}
	if spec.PodReplacementPolicy != nil {
		errs = append(errs, enum(*spec.PodReplacementPolicy, sp.Child("podReplacementPolicy"),
			batchv1.TerminatingOrFailed, batchv1.Failed)...)
		if spec.PodFailurePolicy != nil && *spec.PodReplacementPolicy != batchv1.Failed {
			errs = append(errs, field.NotSupported(sp.Child("podReplacementPolicy"), *spec.PodReplacementPolicy,
				[]batchv1.PodReplacementPolicy{batchv1.Failed}))
		}
	}
	if pfp := spec.PodFailurePolicy; pfp != nil {
		for i, r := range pfp.Rules {
			rp := sp.Child("podFailurePolicy", "rules").Index(i)
			errs = append(errs, enum(r.Action, rp.Child("action"), batchv1.PodFailurePolicyActionCount,
				batchv1.PodFailurePolicyActionFailIndex, batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyActionIgnore)...)
			if (r.OnExitCodes == nil) == (len(r.OnPodConditions) == 0) {
				errs = append(errs, field.Invalid(rp, "", "specifying one of OnExitCodes and OnPodConditions is required"))
			}
		}
	}
	errs = append(errs, validatePodTemplateSpec(&spec.Template, sp.Child("template"), podOpts{ownerChecksRestartPolicy: true})...)
	// Job pods run to completion, so they cannot restart Always; there is no
	// default, and Kubernetes reports any other value as Required.
	if rp := spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever {
		errs = append(errs, field.Required(sp.Child("template", "spec", "restartPolicy"),
			fmt.Sprintf("valid values: %q, %q", corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever)))
	}
	return errs
}

// validateCronJob is ValidateCronJobCreate and ValidateCronJobUpdate.
func validateCronJob(cj, old *batchv1.CronJob) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	spec := &cj.Spec
	if old == nil && len(cj.Name) > 52 {
		// The controller appends an 11-character suffix to make Job names,
		// which must fit in 63.
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), cj.Name, "must be no more than 52 characters"))
	}
	if spec.Schedule == "" {
		errs = append(errs, field.Required(sp.Child("schedule"), ""))
	} else {
		if err := parseCron(spec.Schedule); err != nil {
			errs = append(errs, field.Invalid(sp.Child("schedule"), spec.Schedule, err.Error()))
		}
		// TZ= in the schedule predates the timeZone field; existing
		// objects keep it, new ones must use the field.
		allowTZ := old != nil && strings.Contains(old.Spec.Schedule, "TZ")
		switch {
		case allowTZ && strings.Contains(spec.Schedule, "TZ") && spec.TimeZone != nil:
			errs = append(errs, field.Invalid(sp.Child("schedule"), spec.Schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
		case !allowTZ && strings.Contains(spec.Schedule, "TZ"):
			errs = append(errs, field.Invalid(sp.Child("schedule"), spec.Schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
		}
	}
	if tz := spec.TimeZone; tz != nil {
		tp := sp.Child("timeZone")
		switch {
		case *tz == "":
			errs = append(errs, field.Invalid(tp, *tz, "timeZone must be nil or non-empty string"))
		case strings.EqualFold(*tz, "Local"):
			errs = append(errs, field.Invalid(tp, *tz, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"))
		default:
			if _, err := loadLocation(*tz); err != nil {
				errs = append(errs, field.Invalid(tp, *tz, err.Error()))
			}
		}
	}
	errs = append(errs, nonNegativePtr(spec.StartingDeadlineSeconds, sp.Child("startingDeadlineSeconds"))...)
	errs = append(errs, nonNegativePtr(spec.SuccessfulJobsHistoryLimit, sp.Child("successfulJobsHistoryLimit"))...)
	errs = append(errs, nonNegativePtr(spec.FailedJobsHistoryLimit, sp.Child("failedJobsHistoryLimit"))...)
	errs = append(errs, enum(spec.ConcurrencyPolicy, sp.Child("concurrencyPolicy"),
		batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent)...)

	jp := sp.Child("jobTemplate")
	errs = append(errs, validateLabels(spec.JobTemplate.Labels, jp.Child("metadata", "labels"))...)
	errs = append(errs, validateJobSpec(&spec.JobTemplate.Spec, jp.Child("spec"))...)
	// The controller generates each Job's selector.
	if spec.JobTemplate.Spec.Selector != nil {
		errs = append(errs, field.Invalid(jp.Child("spec", "selector"), spec.JobTemplate.Spec.Selector, "`selector` will be auto-generated"))
	}
	if ms := spec.JobTemplate.Spec.ManualSelector; ms != nil && *ms {
		errs = append(errs, field.NotSupported(jp.Child("spec", "manualSelector"), *ms, []string{"nil", "false"}))
	}
	return errs
}

// loadLocation is time.LoadLocation, rejecting names that look like paths
// before they reach the file system.
func loadLocation(name string) (*time.Location, error) {
	if len(name) > 255 || strings.ContainsAny(name, "\x00\\") || strings.HasPrefix(name, "/") {
		return nil, fmt.Errorf("unknown time zone %s", name)
	}
	return time.LoadLocation(name)
}
