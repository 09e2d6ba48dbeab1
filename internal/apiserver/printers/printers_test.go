package printers

import (
	"encoding/json"
	"errors"
	"fmt"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

var now = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// ago is a timestamp d before now.
func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

func agoPtr(d time.Duration) *metav1.Time { t := ago(d); return &t }

func ptr[T any](v T) *T { return &v }

func om(name string, created time.Duration) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", CreationTimestamp: ago(created)}
}

func running(ready bool, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Ready: ready, RestartCount: restarts,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: ago(time.Minute)}}}
}

func waiting(reason string, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{RestartCount: restarts,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
}

func terminated(reason string, code, signal int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code, Signal: signal}}}
}

func containers(names ...string) []corev1.Container {
	var out []corev1.Container
	for _, n := range names {
		out = append(out, corev1.Container{Name: n, Image: n + ":1"})
	}
	return out
}

func pod(name string, phase corev1.PodPhase, spec corev1.PodSpec, statuses ...corev1.ContainerStatus) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: om(name, 10*time.Minute), Spec: spec,
		Status: corev1.PodStatus{Phase: phase, ContainerStatuses: statuses}}
}

func podCases() []cellCase {
	two := corev1.PodSpec{Containers: containers("app", "log"), NodeName: "node-1"}
	one := corev1.PodSpec{Containers: containers("app")}

	crash := pod("web-1", corev1.PodRunning, two, running(true, 0), waiting("CrashLoopBackOff", 3))
	crash.Status.ContainerStatuses[1].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{FinishedAt: ago(2 * time.Minute)}
	crash.Status.PodIP = "10.0.0.5"

	deleting := pod("web-2", corev1.PodRunning, one, running(true, 0))
	deleting.DeletionTimestamp = agoPtr(time.Second)

	initSpec := corev1.PodSpec{InitContainers: containers("migrate", "seed"), Containers: containers("app")}
	initializing := pod("init", corev1.PodPending, initSpec, waiting("PodInitializing", 0))
	initializing.Status.InitContainerStatuses = []corev1.ContainerStatus{terminated("Completed", 0, 0), running(false, 0)}
	initCrash := pod("init-crash", corev1.PodPending, initSpec, waiting("PodInitializing", 0))
	initCrash.Status.InitContainerStatuses = []corev1.ContainerStatus{waiting("CrashLoopBackOff", 4)}
	initFailed := pod("init-failed", corev1.PodPending, initSpec)
	initFailed.Status.InitContainerStatuses = []corev1.ContainerStatus{terminated("", 3, 0)}

	completed := pod("job-x", corev1.PodSucceeded, one, terminated("Completed", 0, 0))
	nodeLost := pod("lost", corev1.PodRunning, one, running(true, 0))
	nodeLost.Status.Reason = "NodeLost"
	nodeLostDeleted := nodeLost.DeepCopy()
	nodeLostDeleted.DeletionTimestamp = agoPtr(time.Second)

	gated := pod("gated", corev1.PodPending, one)
	gated.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonSchedulingGated}}

	gates := pod("gates", corev1.PodRunning, one, running(true, 0))
	gates.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "a"}, {ConditionType: "b"}}
	gates.Status.Conditions = []corev1.PodCondition{{Type: "a", Status: corev1.ConditionTrue}, {Type: "b", Status: corev1.ConditionFalse}}
	gates.Status.NominatedNodeName = "node-2"
	gates.Status.PodIPs = []corev1.PodIP{{IP: "fd00::1"}, {IP: "10.0.0.9"}}

	sidecarSpec := corev1.PodSpec{InitContainers: containers("proxy"), Containers: containers("app")}
	sidecarSpec.InitContainers[0].RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
	sidecar := pod("sidecar", corev1.PodRunning, sidecarSpec, running(true, 1))
	sidecar.Status.InitContainerStatuses = []corev1.ContainerStatus{running(true, 2)}
	sidecar.Status.InitContainerStatuses[0].Name = "proxy"
	sidecar.Status.InitContainerStatuses[0].Started = ptr(true)
	sidecar.Status.InitContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{FinishedAt: ago(3 * time.Hour)}
	sidecar.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}}

	// One container done, the other still serving: the pod runs.
	halfDone := pod("half", corev1.PodRunning, two, running(true, 0), terminated("Completed", 0, 0))
	halfDone.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}

	return []cellCase{
		{"crashloop", crash, []any{"web-1", "1/2", "CrashLoopBackOff", "3 (2m ago)", "10m", "10.0.0.5", "node-1", "<none>", "<none>"}},
		{"terminating", deleting, []any{"web-2", "1/1", "Terminating", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"init progress", initializing, []any{"init", "0/1", "Init:1/2", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"init crashloop", initCrash, []any{"init-crash", "0/1", "Init:CrashLoopBackOff", "4", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"init exit code", initFailed, []any{"init-failed", "0/1", "Init:ExitCode:3", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"oomkilled", pod("oom", corev1.PodRunning, one, terminated("OOMKilled", 137, 0)), []any{"oom", "0/1", "OOMKilled", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"signal", pod("sig", corev1.PodRunning, one, terminated("", 0, 9)), []any{"sig", "0/1", "Signal:9", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"exit code", pod("exit", corev1.PodFailed, one, terminated("", 2, 0)), []any{"exit", "0/1", "ExitCode:2", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"errimagepull", pod("img", corev1.PodPending, one, waiting("ErrImagePull", 0)), []any{"img", "0/1", "ErrImagePull", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"completed", completed, []any{"job-x", "0/1", "Completed", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"pending", pod("new", corev1.PodPending, one), []any{"new", "0/1", "Pending", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"node lost", nodeLost, []any{"lost", "1/1", "NodeLost", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"node lost deleted", nodeLostDeleted, []any{"lost", "1/1", "Unknown", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"scheduling gated", gated, []any{"gated", "0/1", "SchedulingGated", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"readiness gates", gates, []any{"gates", "1/1", "Running", "0", "10m", "fd00::1", "<none>", "node-2", "1/2"}},
		{"sidecar", sidecar, []any{"sidecar", "2/2", "Running", "3 (3h ago)", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"completed and running", halfDone, []any{"half", "1/2", "NotReady", "0", "10m", "<none>", "node-1", "<none>", "<none>"}},
	}
}

type cellCase struct {
	name string
	obj  runtime.Object
	want []any
}

func workloadCases() []cellCase {
	tmpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.27"}, {Name: "log", Image: "busybox"}}}}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	dsTmpl := *tmpl.DeepCopy()
	dsTmpl.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
	return []cellCase{
		{"deployment", &appsv1.Deployment{ObjectMeta: om("web", 26*time.Hour),
			Spec:   appsv1.DeploymentSpec{Replicas: ptr(int32(3)), Selector: sel, Template: tmpl},
			Status: appsv1.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2}},
			[]any{"web", "2/3", int64(3), int64(2), "26h", "nginx,log", "nginx:1.27,busybox", "app=web"}},
		{"deployment defaults", &appsv1.Deployment{ObjectMeta: om("bare", 50*time.Hour)},
			[]any{"bare", "0/1", int64(0), int64(0), "2d2h", "", "", ""}},
		{"replicaset", &appsv1.ReplicaSet{ObjectMeta: om("web-5d4f", 90*time.Second),
			Spec:   appsv1.ReplicaSetSpec{Replicas: ptr(int32(3)), Selector: sel, Template: tmpl},
			Status: appsv1.ReplicaSetStatus{Replicas: 3, ReadyReplicas: 1}},
			[]any{"web-5d4f", int64(3), int64(3), int64(1), "90s", "nginx,log", "nginx:1.27,busybox", "app=web"}},
		{"statefulset", &appsv1.StatefulSet{ObjectMeta: om("db", 3*time.Minute+2*time.Second),
			Spec:   appsv1.StatefulSetSpec{Replicas: ptr(int32(3)), Template: tmpl},
			Status: appsv1.StatefulSetStatus{ReadyReplicas: 1}},
			[]any{"db", "1/3", "3m2s", "nginx,log", "nginx:1.27,busybox"}},
		{"daemonset", &appsv1.DaemonSet{ObjectMeta: om("fluent", 5*time.Second),
			Spec: appsv1.DaemonSetSpec{Selector: sel, Template: dsTmpl},
			Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, NumberReady: 2,
				UpdatedNumberScheduled: 3, NumberAvailable: 2}},
			[]any{"fluent", int64(3), int64(3), int64(2), int64(3), int64(2), "kubernetes.io/os=linux", "5s", "nginx,log", "nginx:1.27,busybox", "app=web"}},
		{"daemonset no node selector", &appsv1.DaemonSet{ObjectMeta: om("agent", time.Hour)},
			[]any{"agent", int64(0), int64(0), int64(0), int64(0), int64(0), "<none>", "60m", "", "", "<none>"}},
		{"controllerrevision", &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "db-7b9", CreationTimestamp: ago(time.Hour),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", Controller: ptr(true)}}},
			Revision: 2},
			[]any{"db-7b9", "statefulset.apps/db", int64(2), "60m"}},
		{"controllerrevision orphan", &appsv1.ControllerRevision{ObjectMeta: om("x", time.Hour), Revision: 1},
			[]any{"x", "<none>", int64(1), "60m"}},
		{"job complete", &batchv1.Job{ObjectMeta: om("pi", 10*time.Minute),
			Spec: batchv1.JobSpec{Completions: ptr(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"batch.kubernetes.io/controller-uid": "u"}}, Template: tmpl},
			Status: batchv1.JobStatus{Succeeded: 1, StartTime: agoPtr(5 * time.Minute), CompletionTime: agoPtr(4 * time.Minute),
				Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}}},
			[]any{"pi", "Complete", "1/1", "60s", "10m", "nginx,log", "nginx:1.27,busybox", "batch.kubernetes.io/controller-uid=u"}},
		{"job running work queue", &batchv1.Job{ObjectMeta: om("queue", 10*time.Minute),
			Spec:   batchv1.JobSpec{Parallelism: ptr(int32(3))},
			Status: batchv1.JobStatus{StartTime: agoPtr(150 * time.Second)}},
			[]any{"queue", "Running", "0/1 of 3", "2m30s", "10m", "", "", "<none>"}},
		{"job failed", &batchv1.Job{ObjectMeta: om("bad", 10*time.Minute),
			Status: batchv1.JobStatus{Failed: 6, Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue}}}},
			[]any{"bad", "Failed", "0/1", "", "10m", "", "", "<none>"}},
		{"job suspended", &batchv1.Job{ObjectMeta: om("later", 10*time.Minute), Spec: batchv1.JobSpec{Completions: ptr(int32(5))},
			Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobSuspended, Status: corev1.ConditionTrue}}}},
			[]any{"later", "Suspended", "0/5", "", "10m", "", "", "<none>"}},
		{"job terminating", &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "gone", CreationTimestamp: ago(time.Minute), DeletionTimestamp: agoPtr(0)}},
			[]any{"gone", "Terminating", "0/1", "", "60s", "", "", "<none>"}},
		{"cronjob", &batchv1.CronJob{ObjectMeta: om("backup", 48*time.Hour),
			Spec:   batchv1.CronJobSpec{Schedule: "*/5 * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}},
			Status: batchv1.CronJobStatus{Active: []corev1.ObjectReference{{Name: "backup-1"}}, LastScheduleTime: agoPtr(3 * time.Minute)}},
			[]any{"backup", "*/5 * * * *", "<none>", "False", int64(1), "3m", "2d", "nginx,log", "nginx:1.27,busybox", "<none>"}},
		{"cronjob suspended", &batchv1.CronJob{ObjectMeta: om("off", time.Minute),
			Spec: batchv1.CronJobSpec{Schedule: "@daily", TimeZone: ptr("Europe/Paris"), Suspend: ptr(true)}},
			[]any{"off", "@daily", "Europe/Paris", "True", int64(0), "<none>", "60s", "", "", "<none>"}},
		{"hpa", &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: om("web", time.Hour),
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "web", APIVersion: "apps/v1"},
				MinReplicas:    ptr(int32(1)), MaxReplicas: 10,
				Metrics: []autoscalingv2.MetricSpec{
					{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
						Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr(int32(80))}}},
					{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceMemory,
						Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr(resource.MustParse("1Gi"))}}},
					{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
						Target: autoscalingv2.MetricTarget{AverageValue: ptr(resource.MustParse("10"))}}},
				}},
			Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 2, CurrentMetrics: []autoscalingv2.MetricStatus{
				{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{Name: corev1.ResourceCPU,
					Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr(int32(40))}}},
			}}},
			[]any{"web", "Deployment/web", "cpu: 40%/80%, memory: <unknown>/1Gi + 1 more...", "1", int64(10), int64(2), "60m"}},
		{"hpa external and object", &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: om("queue", time.Hour),
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "worker"}, MaxReplicas: 5,
				Metrics: []autoscalingv2.MetricSpec{
					{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
						Target: autoscalingv2.MetricTarget{AverageValue: ptr(resource.MustParse("30"))}}},
					{Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricSource{
						Target: autoscalingv2.MetricTarget{Value: ptr(resource.MustParse("100"))}}},
				}},
			Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentMetrics: []autoscalingv2.MetricStatus{
				{External: &autoscalingv2.ExternalMetricStatus{Current: autoscalingv2.MetricValueStatus{AverageValue: ptr(resource.MustParse("20"))}}},
				{Object: &autoscalingv2.ObjectMetricStatus{Current: autoscalingv2.MetricValueStatus{Value: ptr(resource.MustParse("50"))}}},
			}}},
			[]any{"queue", "Deployment/worker", "20/30 (avg), 50/100", "<unset>", int64(5), int64(0), "60m"}},
		{"hpa container resource and pods", &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: om("api", time.Hour),
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "api"}, MaxReplicas: 5,
				Metrics: []autoscalingv2.MetricSpec{
					{Type: autoscalingv2.ContainerResourceMetricSourceType, ContainerResource: &autoscalingv2.ContainerResourceMetricSource{Name: corev1.ResourceCPU, Container: "app",
						Target: autoscalingv2.MetricTarget{AverageUtilization: ptr(int32(60))}}},
					{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
						Target: autoscalingv2.MetricTarget{AverageValue: ptr(resource.MustParse("10"))}}},
				}},
			Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentMetrics: []autoscalingv2.MetricStatus{
				{ContainerResource: &autoscalingv2.ContainerResourceMetricStatus{Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr(int32(30))}}},
				{Pods: &autoscalingv2.PodsMetricStatus{Current: autoscalingv2.MetricValueStatus{AverageValue: ptr(resource.MustParse("5"))}}},
			}}},
			[]any{"api", "Deployment/api", "cpu: 30%/60%, 5/10", "<unset>", int64(5), int64(0), "60m"}},
		{"hpa no metrics", &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: om("idle", time.Hour),
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "StatefulSet", Name: "db"}, MaxReplicas: 3}},
			[]any{"idle", "StatefulSet/db", "<none>", "<unset>", int64(3), int64(0), "60m"}},
		{"hpa broken metric", &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: om("odd", time.Hour),
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 1, Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ExternalMetricSourceType}}}},
			[]any{"odd", "/", "<unknown type>", "<unset>", int64(1), int64(0), "60m"}},
	}
}

func coreCases() []cellCase {
	svc := func(name string, spec corev1.ServiceSpec) *corev1.Service {
		return &corev1.Service{ObjectMeta: om(name, 5*time.Minute), Spec: spec}
	}
	lbIngress := svc("lb-ready", corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIPs: []string{"10.96.0.20"},
		Ports: []corev1.ServicePort{{Port: 443, NodePort: 31443, Protocol: corev1.ProtocolTCP}}})
	lbIngress.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}, {Hostname: "lb.example.com"}, {IP: "203.0.113.7"}}

	readyNode := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "cp-1", CreationTimestamp: ago(72 * time.Hour),
			Labels: map[string]string{"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "", "kubernetes.io/role": "etcd"}},
		Spec: corev1.NodeSpec{Unschedulable: true},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "cp-1"}, {Type: corev1.NodeInternalIP, Address: "192.168.1.10"}, {Type: corev1.NodeExternalIP, Address: "198.51.100.1"}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.32.0", OSImage: "Ubuntu 24.04", KernelVersion: "6.8.0", ContainerRuntimeVersion: "containerd://1.7.22"},
		},
	}
	notReady := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w-1", CreationTimestamp: ago(time.Hour)},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}}}

	bound := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-1", CreationTimestamp: ago(time.Hour)},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany, corev1.ReadWriteOnce, corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef:                      &corev1.ObjectReference{Namespace: "default", Name: "data"},
			StorageClassName:              "standard",
			VolumeMode:                    ptr(corev1.PersistentVolumeFilesystem),
		},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeBound}}
	releasing := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-2", CreationTimestamp: ago(time.Hour), DeletionTimestamp: agoPtr(0),
		Annotations: map[string]string{betaStorageClassAnnotation: "old"}},
		Spec:   corev1.PersistentVolumeSpec{StorageClassName: "standard", VolumeAttributesClassName: ptr("gold")},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeFailed, Reason: "Recycle failed"}}

	quota := &corev1.ResourceQuota{ObjectMeta: om("compute", time.Hour), Status: corev1.ResourceQuotaStatus{
		Hard: corev1.ResourceList{"pods": resource.MustParse("10"), "requests.cpu": resource.MustParse("1"), "limits.cpu": resource.MustParse("2")},
		Used: corev1.ResourceList{"pods": resource.MustParse("3"), "requests.cpu": resource.MustParse("500m")},
	}}

	return []cellCase{
		{"service nodeport", svc("web", corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
			Ports: []corev1.ServicePort{{Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP}}, Selector: map[string]string{"app": "web"}}),
			[]any{"web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP", "5m", "app=web"}},
		{"service clusterip two ports", svc("api", corev1.ServiceSpec{ClusterIP: "10.96.0.11",
			Ports: []corev1.ServicePort{{Port: 80}, {Port: 53, Protocol: corev1.ProtocolUDP}}, ExternalIPs: []string{"1.2.3.4", "5.6.7.8"}}),
			[]any{"api", "ClusterIP", "10.96.0.11", "1.2.3.4,5.6.7.8", "80/TCP,53/UDP", "5m", "<none>"}},
		{"service headless", svc("db", corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "None", ClusterIPs: []string{"None"}}),
			[]any{"db", "ClusterIP", "None", "<none>", "<none>", "5m", "<none>"}},
		{"service loadbalancer pending", svc("lb", corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIPs: []string{"10.96.0.12"},
			Ports: []corev1.ServicePort{{Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP}, {Port: 443, Protocol: corev1.ProtocolTCP}}}),
			[]any{"lb", "LoadBalancer", "10.96.0.12", "<pending>", "80:30080/TCP,443/TCP", "5m", "<none>"}},
		{"service loadbalancer ready", lbIngress,
			[]any{"lb-ready", "LoadBalancer", "10.96.0.20", "203.0.113.7,lb.example.com", "443:31443/TCP", "5m", "<none>"}},
		{"service externalname", svc("ext", corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}),
			[]any{"ext", "ExternalName", "<none>", "db.example.com", "<none>", "5m", "<none>"}},
		{"endpoints", &corev1.Endpoints{ObjectMeta: om("web", time.Minute), Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}, {IP: "fd00::3"}, {IP: "10.0.0.4"}},
			Ports:     []corev1.EndpointPort{{Port: 8080}}}}},
			[]any{"web", "10.0.0.1:8080,10.0.0.2:8080,[fd00::3]:8080 + 1 more...", "60s"}},
		{"endpoints headless", &corev1.Endpoints{ObjectMeta: om("h", time.Minute), Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}}}}},
			[]any{"h", "10.0.0.1", "60s"}},
		{"endpoints none", &corev1.Endpoints{ObjectMeta: om("e", time.Minute)}, []any{"e", "<none>", "60s"}},
		{"namespace", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", CreationTimestamp: ago(400 * 24 * time.Hour)},
			Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}, []any{"kube-system", "Active", "400d"}},
		{"namespace terminating", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "old", CreationTimestamp: ago(time.Hour), DeletionTimestamp: agoPtr(0)},
			Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}, []any{"old", "Terminating", "60m"}},
		{"node ready cordoned", readyNode,
			[]any{"cp-1", "Ready,SchedulingDisabled", "control-plane,etcd", "3d", "v1.32.0", "192.168.1.10", "198.51.100.1", "Ubuntu 24.04", "6.8.0", "containerd://1.7.22"}},
		{"node not ready", notReady, []any{"w-1", "NotReady", "<none>", "60m", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"}},
		{"node unknown", &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w-2"}},
			[]any{"w-2", "Unknown", "<none>", "<unknown>", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"}},
		{"configmap", &corev1.ConfigMap{ObjectMeta: om("cfg", time.Minute), Data: map[string]string{"a": "1", "b": "2"}, BinaryData: map[string][]byte{"c": {1}}},
			[]any{"cfg", int64(3), "60s"}},
		{"secret", &corev1.Secret{ObjectMeta: om("tls", time.Minute), Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": nil, "tls.key": nil}},
			[]any{"tls", "kubernetes.io/tls", int64(2), "60s"}},
		{"secret string data", &corev1.Secret{ObjectMeta: om("s", time.Minute), StringData: map[string]string{"password": "x"}},
			[]any{"s", "Opaque", int64(1), "60s"}},
		{"serviceaccount", &corev1.ServiceAccount{ObjectMeta: om("default", time.Minute)}, []any{"default", int64(0), "60s"}},
		{"event", &corev1.Event{ObjectMeta: om("web-1.17a2b", 5*time.Minute),
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-1", FieldPath: "spec.containers{log}"},
			Reason:         "BackOff", Message: "Back-off restarting failed container\n", Type: corev1.EventTypeWarning, Count: 4,
			Source:         corev1.EventSource{Component: "kubelet", Host: "node-1"},
			FirstTimestamp: ago(5 * time.Minute), LastTimestamp: ago(30 * time.Second)},
			[]any{"30s", "Warning", "BackOff", "pod/web-1", "spec.containers{log}", "kubelet, node-1", "Back-off restarting failed container", "5m", int64(4), "web-1.17a2b"}},
		{"event new style", &corev1.Event{ObjectMeta: om("sched.1", time.Minute),
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-2"}, Reason: "Scheduled", Type: corev1.EventTypeNormal,
			EventTime: metav1.NewMicroTime(now.Add(-45 * time.Second)), ReportingController: "default-scheduler", ReportingInstance: "sched-0"},
			[]any{"45s", "Normal", "Scheduled", "pod/web-2", "", "default-scheduler, sched-0", "", "45s", int64(1), "sched.1"}},
		{"event series", &corev1.Event{ObjectMeta: om("series.1", time.Hour),
			InvolvedObject: corev1.ObjectReference{Kind: "Node"}, Reason: "Rebooted",
			EventTime: metav1.NewMicroTime(now.Add(-time.Hour)),
			Series:    &corev1.EventSeries{Count: 7, LastObservedTime: metav1.NewMicroTime(now.Add(-10 * time.Second))}},
			[]any{"10s", "", "Rebooted", "node", "", "", "", "60m", int64(7), "series.1"}},
		{"pv bound", bound, []any{"pv-1", "10Gi", "RWO,RWX", "Retain", "Bound", "default/data", "standard", "<unset>", "", "60m", "Filesystem"}},
		{"pv terminating", releasing, []any{"pv-2", "0", "", "", "Terminating", "", "old", "gold", "Recycle failed", "60m", "<unset>"}},
		{"pvc bound", &corev1.PersistentVolumeClaim{ObjectMeta: om("data", time.Hour),
			Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv-1", StorageClassName: ptr("standard"), VolumeMode: ptr(corev1.PersistentVolumeBlock)},
			Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod},
				Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}}},
			[]any{"data", "Bound", "pv-1", "10Gi", "RWOP", "standard", "<unset>", "60m", "Block"}},
		{"pvc pending", &corev1.PersistentVolumeClaim{ObjectMeta: om("wait", time.Hour),
			Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}},
			[]any{"wait", "Pending", "", "", "", "", "<unset>", "60m", "<unset>"}},
		{"resourcequota", quota, []any{"compute", "60m", "pods: 3/10, requests.cpu: 500m/1", "limits.cpu: 0/2"}},
		{"limitrange", &corev1.LimitRange{ObjectMeta: om("limits", time.Hour)}, []any{"limits", "2025-01-02T02:04:05Z"}},
	}
}

func otherCases() []cellCase {
	return []cellCase{
		{"ingress", &networkingv1.Ingress{ObjectMeta: om("web", time.Hour),
			Spec: networkingv1.IngressSpec{IngressClassName: ptr("nginx"),
				Rules: []networkingv1.IngressRule{{Host: "a.example.com"}, {Host: "b.example.com"}},
				TLS:   []networkingv1.IngressTLS{{Hosts: []string{"a.example.com"}}}},
			Status: networkingv1.IngressStatus{LoadBalancer: networkingv1.IngressLoadBalancerStatus{
				Ingress: []networkingv1.IngressLoadBalancerIngress{{IP: "192.0.2.1"}, {Hostname: "lb.example.com"}}}}},
			[]any{"web", "nginx", "a.example.com,b.example.com", "192.0.2.1,lb.example.com", "80, 443", "60m"}},
		{"ingress many hosts", &networkingv1.Ingress{ObjectMeta: om("many", time.Hour),
			Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: "a"}, {}, {Host: "b"}, {Host: "c"}, {Host: "d"}}}},
			[]any{"many", "<none>", "a,b,c + 2 more...", "", "80", "60m"}},
		{"ingress no host", &networkingv1.Ingress{ObjectMeta: om("any", time.Hour),
			Spec: networkingv1.IngressSpec{DefaultBackend: &networkingv1.IngressBackend{}}},
			[]any{"any", "<none>", "*", "", "80", "60m"}},
		{"ingressclass", &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "nginx", CreationTimestamp: ago(time.Hour)},
			Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx",
				Parameters: &networkingv1.IngressClassParametersReference{APIGroup: ptr("k8s.example.com"), Kind: "IngressParameters", Name: "p"}}},
			[]any{"nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/p", "60m"}},
		{"ingressclass no parameters", &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: networkingv1.IngressClassSpec{Controller: "x/y"}},
			[]any{"c", "x/y", "<none>", "<unknown>"}},
		{"networkpolicy", &networkingv1.NetworkPolicy{ObjectMeta: om("db", time.Hour),
			Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "db"}}}},
			[]any{"db", "role=db", "60m"}},
		{"networkpolicy all pods", &networkingv1.NetworkPolicy{ObjectMeta: om("deny", time.Hour)}, []any{"deny", "<none>", "60m"}},
		{"endpointslice", &discoveryv1.EndpointSlice{ObjectMeta: om("web-abc", time.Hour), AddressType: discoveryv1.AddressTypeIPv4,
			Ports:     []discoveryv1.EndpointPort{{Port: ptr(int32(80))}, {Name: ptr("metrics")}, {}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}, {Addresses: []string{"10.0.0.2", "10.0.0.3"}}, {Addresses: []string{"10.0.0.4"}}}},
			[]any{"web-abc", "IPv4", "80,metrics,*", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...", "60m"}},
		{"endpointslice empty", &discoveryv1.EndpointSlice{ObjectMeta: om("e", time.Hour), AddressType: discoveryv1.AddressTypeIPv6},
			[]any{"e", "IPv6", "<unset>", "<unset>", "60m"}},
		{"runtimeclass", &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "gvisor", CreationTimestamp: ago(time.Hour)}, Handler: "runsc"},
			[]any{"gvisor", "runsc", "60m"}},
		{"validatingadmissionpolicy", &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "max", CreationTimestamp: ago(time.Hour)},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{ParamKind: &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
				Validations: []admissionregistrationv1.Validation{{Expression: "true"}, {Expression: "true"}}}},
			[]any{"max", int64(2), "v1/ConfigMap", "60m"}},
		{"validatingadmissionpolicy without params", &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", CreationTimestamp: ago(time.Hour)}},
			[]any{"p", int64(0), "<unset>", "60m"}},
		{"validatingadmissionpolicybinding", &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "b", CreationTimestamp: ago(time.Hour)},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "max", ParamRef: &admissionregistrationv1.ParamRef{Name: "limits", Namespace: "default"}}},
			[]any{"b", "max", "default/limits", "60m"}},
		{"validatingadmissionpolicybinding selector", &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "b", CreationTimestamp: ago(time.Hour)},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "max", ParamRef: &admissionregistrationv1.ParamRef{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}}}},
			[]any{"b", "max", "a=b", "60m"}},
		{"priorityclass", &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "high", CreationTimestamp: ago(time.Hour)},
			Value: 1000, GlobalDefault: true, PreemptionPolicy: ptr(corev1.PreemptNever)},
			[]any{"high", int64(1000), true, "60m", "Never"}},
		{"storageclass default", &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local-path", CreationTimestamp: ago(time.Hour),
			Annotations: map[string]string{defaultClassAnnotation: "true"}},
			Provisioner: "rancher.io/local-path", VolumeBindingMode: ptr(storagev1.VolumeBindingWaitForFirstConsumer)},
			[]any{"local-path (default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer", false, "60m"}},
		{"storageclass retain", &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "keep", CreationTimestamp: ago(time.Hour)},
			Provisioner: "csi.example.com", ReclaimPolicy: ptr(corev1.PersistentVolumeReclaimRetain), AllowVolumeExpansion: ptr(true)},
			[]any{"keep", "csi.example.com", "Retain", "Immediate", true, "60m"}},
		{"lease", &coordinationv1.Lease{ObjectMeta: om("node-1", time.Hour), Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr("node-1")}},
			[]any{"node-1", "node-1", "60m"}},
		{"lease free", &coordinationv1.Lease{ObjectMeta: om("lock", time.Hour)}, []any{"lock", "", "60m"}},
		{"pdb", &policyv1.PodDisruptionBudget{ObjectMeta: om("web", time.Hour),
			Spec:   policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr(intstr.FromInt32(2))},
			Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 1}},
			[]any{"web", "2", "N/A", int64(1), "60m"}},
		{"pdb percent", &policyv1.PodDisruptionBudget{ObjectMeta: om("db", time.Hour),
			Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr(intstr.FromString("25%"))}},
			[]any{"db", "N/A", "25%", int64(0), "60m"}},
		{"role", &rbacv1.Role{ObjectMeta: om("reader", time.Hour)}, []any{"reader", "2025-01-02T02:04:05Z"}},
		{"crd", &apiextensionsv1.CustomResourceDefinition{ObjectMeta: om("widgets.example.com", time.Hour)}, []any{"widgets.example.com", "2025-01-02T02:04:05Z"}},
		{"clusterrole", &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "admin", CreationTimestamp: metav1.NewTime(time.Date(2024, 5, 6, 9, 8, 7, 0, time.FixedZone("CEST", 2*3600)))}},
			[]any{"admin", "2024-05-06T07:08:07Z"}},
		{"rolebinding", &rbacv1.RoleBinding{ObjectMeta: om("read", time.Hour),
			RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "reader", APIGroup: rbacv1.GroupName},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "alice"}, {Kind: rbacv1.UserKind, Name: "bob"},
				{Kind: rbacv1.GroupKind, Name: "devs"}, {Kind: rbacv1.ServiceAccountKind, Namespace: "ci", Name: "builder"}}},
			[]any{"read", "Role/reader", "60m", "alice, bob", "devs", "ci/builder"}},
		{"clusterrolebinding", &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "admins", CreationTimestamp: ago(time.Hour)},
			RoleRef:  rbacv1.RoleRef{Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: "system:masters"}}},
			[]any{"admins", "ClusterRole/cluster-admin", "60m", "", "system:masters", ""}},
	}
}

func newScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s, err := resources.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// gvkOf finds obj's kind in the scheme.
func gvkOf(t *testing.T, s *runtime.Scheme, obj runtime.Object) schema.GroupVersionKind {
	t.Helper()
	gvks, _, err := s.ObjectKinds(obj)
	if err != nil {
		t.Fatal(err)
	}
	return gvks[0]
}

func TestCells(t *testing.T) {
	s := newScheme(t)
	var all []cellCase
	for _, cs := range [][]cellCase{podCases(), workloadCases(), coreCases(), otherCases()} {
		all = append(all, cs...)
	}
	covered := map[schema.GroupKind]bool{}
	for _, tc := range all {
		t.Run(tc.name, func(t *testing.T) {
			gk := gvkOf(t, s, tc.obj).GroupKind()
			covered[gk] = true
			p := For(gk)
			if p == defaultPrinter {
				t.Fatalf("%s has no printer", gk)
			}
			got, err := p.Cells(tc.obj, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(p.Columns) {
				t.Fatalf("%d cells for %d columns: %#v", len(got), len(p.Columns), got)
			}
			if !reflect.DeepEqual(got, tc.want) {
				for i := range got {
					if i >= len(tc.want) || !reflect.DeepEqual(got[i], tc.want[i]) {
						var want any = "(missing)"
						if i < len(tc.want) {
							want = tc.want[i]
						}
						t.Errorf("column %s: got %#v, want %#v", p.Columns[i].Name, got[i], want)
					}
				}
				if len(tc.want) != len(got) {
					t.Errorf("got %d cells, want %d", len(got), len(tc.want))
				}
			}
		})
	}
	// Every printer has at least one case above.
	for gk := range byKind {
		if !covered[gk] {
			t.Errorf("no cell case for %s", gk)
		}
	}
}

// TestColumns pins the headers kubectl shows (upper-cased names), the wide
// ones after "|", for the kinds people look at most, and the rules every
// printer follows.
func TestColumns(t *testing.T) {
	headers := func(p *Printer) string {
		var normal, wideCols []string
		for _, c := range p.Columns {
			if c.Priority == 0 {
				normal = append(normal, strings.ToUpper(c.Name))
			} else {
				wideCols = append(wideCols, strings.ToUpper(c.Name))
			}
		}
		return strings.Join(normal, ",") + " | " + strings.Join(wideCols, ",")
	}
	for gk, want := range map[schema.GroupKind]string{
		{Kind: "Pod"}:                                             "NAME,READY,STATUS,RESTARTS,AGE | IP,NODE,NOMINATED NODE,READINESS GATES",
		{Group: "apps", Kind: "Deployment"}:                       "NAME,READY,UP-TO-DATE,AVAILABLE,AGE | CONTAINERS,IMAGES,SELECTOR",
		{Group: "apps", Kind: "ReplicaSet"}:                       "NAME,DESIRED,CURRENT,READY,AGE | CONTAINERS,IMAGES,SELECTOR",
		{Group: "apps", Kind: "StatefulSet"}:                      "NAME,READY,AGE | CONTAINERS,IMAGES",
		{Group: "apps", Kind: "DaemonSet"}:                        "NAME,DESIRED,CURRENT,READY,UP-TO-DATE,AVAILABLE,NODE SELECTOR,AGE | CONTAINERS,IMAGES,SELECTOR",
		{Kind: "Service"}:                                         "NAME,TYPE,CLUSTER-IP,EXTERNAL-IP,PORT(S),AGE | SELECTOR",
		{Kind: "Node"}:                                            "NAME,STATUS,ROLES,AGE,VERSION | INTERNAL-IP,EXTERNAL-IP,OS-IMAGE,KERNEL-VERSION,CONTAINER-RUNTIME",
		{Kind: "Event"}:                                           "LAST SEEN,TYPE,REASON,OBJECT,MESSAGE | SUBOBJECT,SOURCE,FIRST SEEN,COUNT,NAME",
		{Group: "batch", Kind: "Job"}:                             "NAME,STATUS,COMPLETIONS,DURATION,AGE | CONTAINERS,IMAGES,SELECTOR",
		{Group: "batch", Kind: "CronJob"}:                         "NAME,SCHEDULE,TIMEZONE,SUSPEND,ACTIVE,LAST SCHEDULE,AGE | CONTAINERS,IMAGES,SELECTOR",
		{Kind: "PersistentVolume"}:                                "NAME,CAPACITY,ACCESS MODES,RECLAIM POLICY,STATUS,CLAIM,STORAGECLASS,VOLUMEATTRIBUTESCLASS,REASON,AGE | VOLUMEMODE",
		{Kind: "PersistentVolumeClaim"}:                           "NAME,STATUS,VOLUME,CAPACITY,ACCESS MODES,STORAGECLASS,VOLUMEATTRIBUTESCLASS,AGE | VOLUMEMODE",
		{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"}:   "NAME,REFERENCE,TARGETS,MINPODS,MAXPODS,REPLICAS,AGE | ",
		{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}: "NAME,CREATED AT | ",
		{Group: "example.com", Kind: "Widget"}:                    "NAME,AGE | ",
	} {
		if got := headers(For(gk)); got != want {
			t.Errorf("%s: got %s, want %s", gk, got, want)
		}
	}
	for gk, p := range byKind {
		seen := map[string]bool{}
		names := 0
		for _, c := range p.Columns {
			if seen[c.Name] {
				t.Errorf("%s: column %q twice", gk, c.Name)
			}
			seen[c.Name] = true
			if c.Format == "name" {
				names++
			}
			switch c.Type {
			case "string", "integer", "boolean", "date", "number":
			default:
				t.Errorf("%s: column %q has type %q", gk, c.Name, c.Type)
			}
			if c.Description == "" {
				t.Errorf("%s: column %q has no description", gk, c.Name)
			}
		}
		if names != 1 {
			t.Errorf("%s: %d columns of format name", gk, names)
		}
		if first := p.Columns[0]; gk.Kind != "Event" && (first.Name != "Name" || first.Format != "name" || first.Priority != 0) {
			t.Errorf("%s: first column %+v", gk, first)
		}
	}
}

// TestRegistryKinds checks every served kind has its own printer, and that
// printing a zero-valued object of each (what a sloppy client could store)
// neither panics nor fails, with cells of the types JSON deep copy accepts.
func TestRegistryKinds(t *testing.T) {
	s := newScheme(t)
	reg, err := resources.New(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range reg.All() {
		if !res.Stored() {
			continue // printers print the storage version; the API server converts other versions first
		}
		gvk := res.GVK()
		p := For(gvk.GroupKind())
		if p == defaultPrinter {
			t.Errorf("%s has only the default printer", gvk)
			continue
		}
		obj, err := s.New(gvk)
		if err != nil {
			t.Fatal(err)
		}
		cells, err := p.Cells(obj, now)
		if err != nil {
			t.Errorf("%s: zero object: %v", gvk, err)
			continue
		}
		if len(cells) != len(p.Columns) {
			t.Errorf("%s: %d cells for %d columns", gvk, len(cells), len(p.Columns))
		}
		for i, c := range cells {
			switch c.(type) {
			case string, int64, bool:
			default:
				t.Errorf("%s: cell %s is a %T", gvk, p.Columns[i].Name, c)
			}
		}
		for _, include := range []string{"", "Object", "Metadata", "None"} {
			table, err := Table(gvk, []runtime.Object{obj}, now, include, true)
			if err != nil {
				t.Errorf("%s include=%q: %v", gvk, include, err)
				continue
			}
			table.DeepCopy() // panics on cells JSON cannot hold
			if _, err := json.Marshal(table); err != nil {
				t.Errorf("%s include=%q: %v", gvk, include, err)
			}
		}
	}
}

func TestCellsRejectsWrongInput(t *testing.T) {
	p := For(schema.GroupKind{Kind: "Pod"})
	for _, obj := range []runtime.Object{nil, (*corev1.Pod)(nil), &corev1.Service{}, &corev1.PodList{}} {
		if cells, err := p.Cells(obj, now); err == nil {
			t.Errorf("%T: no error, cells %v", obj, cells)
		}
	}
	if _, err := defaultPrinter.Cells(nil, now); err == nil {
		t.Error("default printer: nil object accepted")
	}
	if _, err := defaultPrinter.Cells(&metav1.Status{}, now); err == nil {
		t.Error("default printer: object without metadata accepted")
	}
	if _, err := Table(schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, []runtime.Object{&corev1.Service{}}, now, "", true); err == nil || errors.Is(err, ErrIncludeObject) {
		t.Error("Table: a Service printed as a Pod")
	}
	if _, err := Table(schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, nil, now, "Everything", true); !errors.Is(err, ErrIncludeObject) {
		t.Error("Table: bad includeObject accepted")
	}
}

func TestDefaultPrinter(t *testing.T) {
	p := For(schema.GroupKind{Group: "example.com", Kind: "Widget"})
	if p == nil || p != defaultPrinter {
		t.Fatalf("unknown kind got %p", p)
	}
	// Works on any object with metadata, typed or not.
	cells, err := p.Cells(&corev1.Pod{ObjectMeta: om("w", 3*time.Hour+5*time.Minute)}, now)
	if err != nil || !reflect.DeepEqual(cells, []any{"w", "3h5m"}) {
		t.Fatalf("got %v, %v", cells, err)
	}
}

func TestTable(t *testing.T) {
	podGVK := schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
	p1 := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns1", Labels: map[string]string{"app": "a"}, CreationTimestamp: ago(time.Minute)},
		Spec: corev1.PodSpec{Containers: containers("c")}, Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}
	p2 := &corev1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns2"},
		Spec: corev1.PodSpec{Containers: containers("c")}}
	objs := []runtime.Object{p1, p2}

	t.Run("metadata", func(t *testing.T) {
		for _, include := range []string{"", "Metadata"} {
			table, err := Table(podGVK, objs, now, include, true)
			if err != nil {
				t.Fatal(err)
			}
			if table.Kind != "Table" || table.APIVersion != "meta.k8s.io/v1" || len(table.ColumnDefinitions) != 9 || len(table.Rows) != 2 {
				t.Fatalf("table: %+v", table)
			}
			if want := []any{"a", "0/1", "Succeeded", "0", "60s", "<none>", "<none>", "<none>", "<none>"}; !reflect.DeepEqual(table.Rows[0].Cells, want) {
				t.Errorf("cells %#v", table.Rows[0].Cells)
			}
			if c := table.Rows[0].Conditions; len(c) != 1 || c[0].Type != metav1.RowCompleted || c[0].Status != metav1.ConditionTrue {
				t.Errorf("succeeded pod's row conditions: %+v", c)
			}
			if c := table.Rows[1].Conditions; c != nil {
				t.Errorf("pending pod's row conditions: %+v", c)
			}
			partial, ok := table.Rows[1].Object.Object.(*metav1.PartialObjectMetadata)
			if !ok || partial.Name != "b" || partial.Namespace != "ns2" || partial.Kind != "PartialObjectMetadata" || partial.APIVersion != "meta.k8s.io/v1" {
				t.Fatalf("row object %#v", table.Rows[1].Object.Object)
			}

			var decoded struct {
				Kind, APIVersion  string
				ColumnDefinitions []map[string]any
				Rows              []struct {
					Cells  []any
					Object map[string]any
				}
			}
			mustRoundTrip(t, table, &decoded)
			if decoded.Kind != "Table" || decoded.APIVersion != "meta.k8s.io/v1" {
				t.Errorf("encoded kind %q apiVersion %q", decoded.Kind, decoded.APIVersion)
			}
			if c := decoded.ColumnDefinitions[0]; c["name"] != "Name" || c["format"] != "name" || c["type"] != "string" {
				t.Errorf("first column %v", c)
			}
			if c := decoded.ColumnDefinitions[5]; c["name"] != "IP" || c["priority"] != float64(1) {
				t.Errorf("IP column %v", c)
			}
			o := decoded.Rows[0].Object
			md, _ := o["metadata"].(map[string]any)
			if o["kind"] != "PartialObjectMetadata" || o["apiVersion"] != "meta.k8s.io/v1" || md["name"] != "a" || md["namespace"] != "ns1" {
				t.Errorf("encoded row object %v", o)
			}
			if labels, _ := md["labels"].(map[string]any); labels["app"] != "a" {
				t.Errorf("labels (kubectl --show-labels) lost: %v", md)
			}
			if _, hasSpec := o["spec"]; hasSpec {
				t.Error("metadata row object carries the spec")
			}
		}
	})

	t.Run("object", func(t *testing.T) {
		table, err := Table(podGVK, objs, now, "Object", true)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := table.Rows[0].Object.Object.(*corev1.Pod)
		if !ok || got.Name != "a" || got.Kind != "Pod" || got.APIVersion != "v1" {
			t.Fatalf("row object %#v", table.Rows[0].Object.Object)
		}
		if p1.Kind != "" {
			t.Error("the caller's object was modified")
		}
		if table.Rows[1].Object.Object != p2 {
			t.Error("an object with its kind set was copied for nothing")
		}
		var decoded struct {
			Rows []struct{ Object map[string]any }
		}
		mustRoundTrip(t, table, &decoded)
		o := decoded.Rows[0].Object
		if o["kind"] != "Pod" || o["apiVersion"] != "v1" || o["spec"] == nil {
			t.Errorf("encoded full object %v", o)
		}
		// A group kind gets group/version.
		dep := &appsv1.Deployment{ObjectMeta: om("web", time.Hour)}
		table, err = Table(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, []runtime.Object{dep}, now, "Object", false)
		if err != nil {
			t.Fatal(err)
		}
		if got := table.Rows[0].Object.Object.GetObjectKind().GroupVersionKind(); got.GroupVersion().String() != "apps/v1" || got.Kind != "Deployment" {
			t.Errorf("deployment row object kind %v", got)
		}
	})

	t.Run("none", func(t *testing.T) {
		table, err := Table(podGVK, objs, now, "None", true)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range table.Rows {
			if r.Object.Object != nil || r.Object.Raw != nil {
				t.Errorf("row object %v", r.Object)
			}
		}
		b, err := json.Marshal(table)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"object":null`) {
			t.Errorf("encoded: %s", b)
		}
	})

	t.Run("without columns", func(t *testing.T) {
		table, err := Table(podGVK, objs[:1], now, "", false)
		if err != nil {
			t.Fatal(err)
		}
		if table.ColumnDefinitions != nil || len(table.Rows) != 1 || len(table.Rows[0].Cells) != 9 {
			t.Fatalf("table %+v", table)
		}
	})

	t.Run("empty list", func(t *testing.T) {
		table, err := Table(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, nil, now, "", true)
		if err != nil {
			t.Fatal(err)
		}
		if len(table.ColumnDefinitions) != 8 || table.ColumnDefinitions[1].Name != "Ready" {
			t.Fatalf("columns %+v", table.ColumnDefinitions)
		}
		b, err := json.Marshal(table)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"kind":"Table"`, `"apiVersion":"meta.k8s.io/v1"`, `"rows":[]`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s missing from %s", want, b)
			}
		}
	})

	t.Run("columns are copies", func(t *testing.T) {
		table, err := Table(podGVK, nil, now, "", true)
		if err != nil {
			t.Fatal(err)
		}
		table.ColumnDefinitions[0].Name = "changed"
		if For(podGVK.GroupKind()).Columns[0].Name != "Name" {
			t.Fatal("editing a table changed the shared printer")
		}
	})
}

func mustRoundTrip(t *testing.T, table *metav1.Table, into any) {
	t.Helper()
	b, err := json.Marshal(table)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"kind":"Table","apiVersion":"meta.k8s.io/v1"`) {
		t.Errorf("encoded table lacks its kind: %.200s", b)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatal(fmt.Errorf("%w in %s", err, b))
	}
}
