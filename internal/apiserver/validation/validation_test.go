package validation

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
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
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// Builders of minimal valid objects. Each call returns a fresh object.

func objMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default"}
}

func clusterMeta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }

func podSpec() corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}
}

func template(labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec()}
}

var appLabels = map[string]string{"app": "web"}

func newPod() *corev1.Pod { return &corev1.Pod{ObjectMeta: objMeta("web"), Spec: podSpec()} }

func newDeployment() *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: objMeta("web"), Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: template(map[string]string{"app": "web"}),
	}}
}

func newReplicaSet() *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{ObjectMeta: objMeta("web"), Spec: appsv1.ReplicaSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: template(map[string]string{"app": "web"}),
	}}
}

func newStatefulSet() *appsv1.StatefulSet {
	return &appsv1.StatefulSet{ObjectMeta: objMeta("db"), Spec: appsv1.StatefulSetSpec{
		ServiceName: "db",
		Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
		Template:    template(map[string]string{"app": "db"}),
		VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
			ObjectMeta: metav1.ObjectMeta{Name: "data"},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{"storage": resource.MustParse("1Gi")}},
			},
		}},
	}}
}

func newDaemonSet() *appsv1.DaemonSet {
	return &appsv1.DaemonSet{ObjectMeta: objMeta("agent"), Spec: appsv1.DaemonSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
		Template: template(map[string]string{"app": "agent"}),
	}}
}

func jobTemplate() corev1.PodTemplateSpec {
	t := template(nil)
	t.Spec.RestartPolicy = corev1.RestartPolicyNever
	return t
}

// newJob is a job as the server holds it after create: uid set, selector
// generated.
func newJob() *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: objMeta("pi"), Spec: batchv1.JobSpec{Template: jobTemplate()}}
	j.UID = "0b0c4c2e-5a5e-4d8e-9d5f-6c2b1a3f4e5d"
	GenerateJobSelector(j)
	return j
}

func newCronJob() *batchv1.CronJob {
	return &batchv1.CronJob{ObjectMeta: objMeta("hello"), Spec: batchv1.CronJobSpec{
		Schedule:    "*/5 * * * *",
		JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: jobTemplate()}},
	}}
}

func newService() *corev1.Service {
	return &corev1.Service{ObjectMeta: objMeta("web"), Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"},
		Ports:    []corev1.ServicePort{{Port: 80}},
	}}
}

func newConfigMap() *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: objMeta("cfg"), Data: map[string]string{"app.properties": "a=b"}}
}

func newSecret() *corev1.Secret {
	return &corev1.Secret{ObjectMeta: objMeta("creds"), Data: map[string][]byte{"password": []byte("hunter2")}}
}

func newIngress() *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{ObjectMeta: objMeta("web"), Spec: networkingv1.IngressSpec{
		Rules: []networkingv1.IngressRule{{
			Host: "example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &prefix,
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}},
				}},
			}},
		}},
	}}
}

func newPVC() *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{ObjectMeta: objMeta("data"), Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{"storage": resource.MustParse("1Gi")}},
	}}
}

func newHPA() *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: objMeta("web"), Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
		MaxReplicas:    5,
	}}
}

func newRoleBinding() *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{ObjectMeta: objMeta("read"),
		RoleRef:  rbacv1.RoleRef{Kind: "Role", Name: "reader"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "jane"}, {Kind: "ServiceAccount", Name: "default", Namespace: "default"}},
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestDefaultDeployment(t *testing.T) {
	d := newDeployment()
	Default(d)
	s := d.Spec
	check := func(name string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("replicas", *s.Replicas, 1)
	check("strategy.type", s.Strategy.Type, appsv1.RollingUpdateDeploymentStrategyType)
	check("maxUnavailable", s.Strategy.RollingUpdate.MaxUnavailable.String(), "25%")
	check("maxSurge", s.Strategy.RollingUpdate.MaxSurge.String(), "25%")
	check("revisionHistoryLimit", *s.RevisionHistoryLimit, 10)
	check("progressDeadlineSeconds", *s.ProgressDeadlineSeconds, 600)
	ps := s.Template.Spec
	check("restartPolicy", ps.RestartPolicy, corev1.RestartPolicyAlways)
	check("dnsPolicy", ps.DNSPolicy, corev1.DNSClusterFirst)
	check("terminationGracePeriodSeconds", *ps.TerminationGracePeriodSeconds, 30)
	check("schedulerName", ps.SchedulerName, "default-scheduler")
	if ps.SecurityContext == nil || !semanticEqual(*ps.SecurityContext, corev1.PodSecurityContext{}) {
		t.Errorf("securityContext = %v, want {}", ps.SecurityContext)
	}
	if ps.EnableServiceLinks != nil {
		t.Errorf("enableServiceLinks is a Pod default, not a template default")
	}
	c := ps.Containers[0]
	check("imagePullPolicy", c.ImagePullPolicy, corev1.PullAlways)
	check("terminationMessagePath", c.TerminationMessagePath, "/dev/termination-log")
	check("terminationMessagePolicy", c.TerminationMessagePolicy, corev1.TerminationMessageReadFile)
	if errs := ValidateCreate(d, true); len(errs) != 0 {
		t.Errorf("defaulted deployment invalid: %v", errs)
	}
	// Defaulting is idempotent.
	again := d.DeepCopy()
	Default(again)
	if !semanticEqual(again, d) {
		t.Errorf("second Default changed the object:\n%v", diffFields(d, again))
	}
}

func TestDefaultContainerDetails(t *testing.T) {
	p := newPod()
	c := &p.Spec.Containers[0]
	c.Ports = []corev1.ContainerPort{{ContainerPort: 80}}
	c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80)}}}
	c.Env = []corev1.EnvVar{{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
	c.Resources.Limits = corev1.ResourceList{"cpu": resource.MustParse("500m"), "memory": resource.MustParse("128Mi")}
	p.Spec.Volumes = []corev1.Volume{{Name: "scratch"}, {Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}}
	Default(p)

	if got := c.Ports[0].Protocol; got != corev1.ProtocolTCP {
		t.Errorf("port protocol = %q", got)
	}
	lp := c.LivenessProbe
	if lp.TimeoutSeconds != 1 || lp.PeriodSeconds != 10 || lp.SuccessThreshold != 1 || lp.FailureThreshold != 3 {
		t.Errorf("probe timings = %+v", lp)
	}
	if lp.HTTPGet.Scheme != corev1.URISchemeHTTP || lp.HTTPGet.Path != "/" {
		t.Errorf("httpGet = %+v", lp.HTTPGet)
	}
	if got := c.Env[0].ValueFrom.FieldRef.APIVersion; got != "v1" {
		t.Errorf("fieldRef apiVersion = %q", got)
	}
	if got := c.Resources.Requests.Cpu().String(); got != "500m" {
		t.Errorf("requests default to limits on Pods: cpu request = %q", got)
	}
	if p.Spec.Volumes[0].EmptyDir == nil {
		t.Errorf("sourceless volume not defaulted to emptyDir")
	}
	if m := p.Spec.Volumes[1].ConfigMap.DefaultMode; m == nil || *m != 0644 {
		t.Errorf("configMap defaultMode = %v", m)
	}
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("phase = %q", p.Status.Phase)
	}
	if p.Status.QOSClass != corev1.PodQOSGuaranteed {
		t.Errorf("qosClass = %q", p.Status.QOSClass)
	}
	if p.Spec.EnableServiceLinks == nil || !*p.Spec.EnableServiceLinks {
		t.Errorf("enableServiceLinks = %v", p.Spec.EnableServiceLinks)
	}
	if errs := ValidateCreate(p, true); len(errs) != 0 {
		t.Errorf("defaulted pod invalid: %v", errs)
	}
}

func TestDefaultPullPolicy(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"nginx":                                          corev1.PullAlways,
		"nginx:latest":                                   corev1.PullAlways,
		"docker.io/library/nginx":                        corev1.PullAlways,
		"localhost:5000/team/app":                        corev1.PullAlways,
		"nginx:1.27":                                     corev1.PullIfNotPresent,
		"registry.k8s.io/pause:3.10":                     corev1.PullIfNotPresent,
		"localhost:5000/team/app:v2":                     corev1.PullIfNotPresent,
		"nginx@sha256:" + strings.Repeat("a", 64):        corev1.PullIfNotPresent,
		"nginx:latest@sha256:" + strings.Repeat("b", 64): corev1.PullAlways,
		"":              corev1.PullIfNotPresent, // unparseable: Kubernetes falls back to IfNotPresent
		"NGINX":         corev1.PullIfNotPresent,
		"nginx:bad:tag": corev1.PullIfNotPresent,
		// Docker Hub's spellings normalise to one name; a host with a port
		// is a host, not a tag.
		"index.docker.io/nginx":                                       corev1.PullAlways,
		"docker.io/library/nginx:latest":                              corev1.PullAlways,
		"registry.example:5000/team/app":                              corev1.PullAlways,
		"registry.example:5000/team/app:1.0":                          corev1.PullIfNotPresent,
		"[::1]:5000/team/app:latest":                                  corev1.PullAlways,
		"registry.example:5000/app@sha256:" + strings.Repeat("c", 64): corev1.PullIfNotPresent,
		// Not references: an image ID, a digest that is not hex, an
		// unknown digest algorithm.
		strings.Repeat("d", 64):                          corev1.PullIfNotPresent,
		"nginx:latest@sha256:" + strings.Repeat("B", 64): corev1.PullIfNotPresent,
		"nginx:latest@md5:" + strings.Repeat("e", 32):    corev1.PullIfNotPresent,
	} {
		if got := defaultPullPolicy(image); got != want {
			t.Errorf("%q: pull policy %q, want %q", image, got, want)
		}
	}
}

func TestDefaultService(t *testing.T) {
	svc := newService()
	svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "metrics", Port: 9090, TargetPort: intstr.FromString("metrics")})
	svc.Spec.Ports[0].Name = "http"
	Default(svc)
	s := svc.Spec
	if s.Type != corev1.ServiceTypeClusterIP || s.SessionAffinity != corev1.ServiceAffinityNone {
		t.Errorf("type %q, sessionAffinity %q", s.Type, s.SessionAffinity)
	}
	if p := s.Ports[0]; p.Protocol != corev1.ProtocolTCP || p.TargetPort != intstr.FromInt32(80) {
		t.Errorf("port 0 = %+v, want TCP with targetPort 80", p)
	}
	if p := s.Ports[1]; p.TargetPort != intstr.FromString("metrics") {
		t.Errorf("named targetPort overwritten: %+v", p)
	}
	if s.IPFamilyPolicy == nil || *s.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack ||
		len(s.IPFamilies) != 1 || s.IPFamilies[0] != corev1.IPv4Protocol {
		t.Errorf("ip families %v %v", s.IPFamilyPolicy, s.IPFamilies)
	}
	if s.InternalTrafficPolicy == nil || *s.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyCluster {
		t.Errorf("internalTrafficPolicy = %v", s.InternalTrafficPolicy)
	}
	if s.ExternalTrafficPolicy != "" {
		t.Errorf("externalTrafficPolicy on a ClusterIP service: %q", s.ExternalTrafficPolicy)
	}
	if errs := ValidateCreate(svc, true); len(errs) != 0 {
		t.Errorf("defaulted service invalid: %v", errs)
	}

	np := newService()
	np.Spec.Type = corev1.ServiceTypeLoadBalancer
	Default(np)
	if np.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster ||
		np.Spec.AllocateLoadBalancerNodePorts == nil || !*np.Spec.AllocateLoadBalancerNodePorts {
		t.Errorf("LoadBalancer defaults: %+v", np.Spec)
	}

	ext := &corev1.Service{ObjectMeta: objMeta("db"), Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}}
	Default(ext)
	if ext.Spec.IPFamilyPolicy != nil || ext.Spec.InternalTrafficPolicy != nil {
		t.Errorf("ExternalName got IP fields: %+v", ext.Spec)
	}
	if errs := ValidateCreate(ext, true); len(errs) != 0 {
		t.Errorf("ExternalName invalid: %v", errs)
	}
}

func TestDefaultWorkloads(t *testing.T) {
	j := &batchv1.Job{ObjectMeta: objMeta("pi"), Spec: batchv1.JobSpec{Template: template(map[string]string{"app": "pi"})}}
	Default(j)
	if j.Spec.Template.Spec.RestartPolicy != "" {
		t.Errorf("job template got restartPolicy %q; Jobs have no default", j.Spec.Template.Spec.RestartPolicy)
	}
	if j.Spec.Template.Spec.DNSPolicy != corev1.DNSClusterFirst {
		t.Errorf("job template not defaulted otherwise")
	}
	js := j.Spec
	if *js.Parallelism != 1 || *js.Completions != 1 || *js.BackoffLimit != 6 || *js.CompletionMode != batchv1.NonIndexedCompletion ||
		*js.Suspend || *js.PodReplacementPolicy != batchv1.TerminatingOrFailed {
		t.Errorf("job defaults: %+v", js)
	}
	if j.Labels["app"] != "pi" {
		t.Errorf("job labels not copied from template: %v", j.Labels)
	}

	if j.Spec.Selector != nil {
		t.Errorf("selector generated without a uid: %v", j.Spec.Selector)
	}
	withUID := &batchv1.Job{ObjectMeta: objMeta("pi"), Spec: batchv1.JobSpec{Template: jobTemplate()}}
	withUID.UID = "6e0f5d3a-1b2c-4d5e-8f90-a1b2c3d4e5f6"
	Default(withUID)
	if withUID.Spec.Selector == nil || withUID.Spec.Selector.MatchLabels[jobControllerUIDLabel] != string(withUID.UID) {
		t.Errorf("selector not generated from the uid: %v", withUID.Spec.Selector)
	}
	if errs := ValidateCreate(withUID, true); len(errs) != 0 {
		t.Errorf("defaulted job invalid: %v", errs)
	}

	par := &batchv1.Job{Spec: batchv1.JobSpec{Parallelism: ptrTo[int32](3)}}
	Default(par)
	if par.Spec.Completions != nil {
		t.Errorf("completions defaulted although parallelism was set")
	}

	cj := newCronJob()
	cj.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy = ""
	Default(cj)
	cs := cj.Spec
	if cs.ConcurrencyPolicy != batchv1.AllowConcurrent || *cs.Suspend || *cs.SuccessfulJobsHistoryLimit != 3 || *cs.FailedJobsHistoryLimit != 1 {
		t.Errorf("cronjob defaults: %+v", cs)
	}
	if cs.JobTemplate.Spec.Template.Spec.RestartPolicy != "" || *cs.JobTemplate.Spec.BackoffLimit != 6 {
		t.Errorf("cronjob job template defaults: %+v", cs.JobTemplate.Spec)
	}

	sts := newStatefulSet()
	Default(sts)
	ss := sts.Spec
	if *ss.Replicas != 1 || ss.PodManagementPolicy != appsv1.OrderedReadyPodManagement ||
		ss.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType || *ss.UpdateStrategy.RollingUpdate.Partition != 0 ||
		*ss.RevisionHistoryLimit != 10 || ss.PersistentVolumeClaimRetentionPolicy.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType ||
		ss.PersistentVolumeClaimRetentionPolicy.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Errorf("statefulset defaults: %+v", ss)
	}
	if vm := ss.VolumeClaimTemplates[0].Spec.VolumeMode; vm == nil || *vm != corev1.PersistentVolumeFilesystem {
		t.Errorf("claim template volumeMode = %v", vm)
	}

	ds := newDaemonSet()
	Default(ds)
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ru.MaxUnavailable.String() != "1" ||
		ru.MaxSurge.String() != "0" || *ds.Spec.RevisionHistoryLimit != 10 {
		t.Errorf("daemonset defaults: %+v", ds.Spec.UpdateStrategy)
	}

	rs := newReplicaSet()
	Default(rs)
	if *rs.Spec.Replicas != 1 {
		t.Errorf("replicaset replicas = %d", *rs.Spec.Replicas)
	}
}

func TestDefaultOtherKinds(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: clusterMeta("team-a")}
	Default(ns)
	if ns.Status.Phase != corev1.NamespaceActive || ns.Labels[corev1.LabelMetadataName] != "team-a" {
		t.Errorf("namespace defaults: %+v", ns)
	}
	sec := &corev1.Secret{ObjectMeta: objMeta("s"), StringData: map[string]string{"user": "admin"}}
	Default(sec)
	if sec.Type != corev1.SecretTypeOpaque || string(sec.Data["user"]) != "admin" || sec.StringData != nil {
		t.Errorf("secret defaults: %+v", sec)
	}
	pvc := newPVC()
	Default(pvc)
	if pvc.Spec.VolumeMode == nil || *pvc.Spec.VolumeMode != corev1.PersistentVolumeFilesystem || pvc.Status.Phase != corev1.ClaimPending {
		t.Errorf("pvc defaults: %+v", pvc)
	}
	hpa := newHPA()
	Default(hpa)
	if *hpa.Spec.MinReplicas != 1 || len(hpa.Spec.Metrics) != 1 || *hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 80 {
		t.Errorf("hpa defaults: %+v", hpa.Spec)
	}
	rb := newRoleBinding()
	Default(rb)
	if rb.RoleRef.APIGroup != rbacv1.GroupName || rb.Subjects[0].APIGroup != rbacv1.GroupName || rb.Subjects[1].APIGroup != "" {
		t.Errorf("rolebinding defaults: %+v", rb)
	}
	lr := &corev1.LimitRange{Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer,
		Max: corev1.ResourceList{"cpu": resource.MustParse("2")}, Min: corev1.ResourceList{"memory": resource.MustParse("64Mi")}}}}}
	Default(lr)
	if item := lr.Spec.Limits[0]; item.Default.Cpu().String() != "2" || item.DefaultRequest.Cpu().String() != "2" ||
		item.DefaultRequest.Memory().String() != "64Mi" {
		t.Errorf("limitrange defaults: %+v", item)
	}
	sc := &storagev1.StorageClass{ObjectMeta: clusterMeta("fast"), Provisioner: "example.com/disk"}
	Default(sc)
	if *sc.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete || *sc.VolumeBindingMode != storagev1.VolumeBindingImmediate {
		t.Errorf("storageclass defaults: %+v", sc)
	}
	// Nil and unknown objects are left alone without panicking.
	Default(nil)
	Default((*corev1.Pod)(nil))
	Default(&metav1.Status{})
}

// want is one expected error: its path and type, and optionally a fragment
// of its detail.
type want struct {
	field  string
	typ    field.ErrorType
	detail string
}

type validationCase struct {
	name       string
	obj        runtime.Object
	old        runtime.Object // nil: create
	namespaced bool
	noDefault  bool // validate as given, without Default
	want       []want
}

func runValidation(t *testing.T, cases []validationCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.noDefault {
				Default(tc.obj)
				if tc.old != nil {
					Default(tc.old)
				}
			}
			var errs field.ErrorList
			if tc.old == nil {
				errs = ValidateCreate(tc.obj, tc.namespaced)
			} else {
				errs = ValidateUpdate(tc.obj, tc.old, tc.namespaced)
			}
			if len(tc.want) == 0 {
				if len(errs) != 0 {
					t.Fatalf("unexpected errors:\n%s", dump(errs))
				}
				return
			}
			for _, w := range tc.want {
				found := false
				for _, e := range errs {
					if e.Field == w.field && e.Type == w.typ && strings.Contains(e.Detail, w.detail) {
						found = true
					}
				}
				if !found {
					t.Errorf("missing %s %s %q; got:\n%s", w.field, w.typ, w.detail, dump(errs))
				}
			}
		})
	}
}

func dump(errs field.ErrorList) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "  %s\n", e.Error())
	}
	return b.String()
}

func with[T runtime.Object](obj T, mutate func(T)) T {
	mutate(obj)
	return obj
}

func TestValidateMetadata(t *testing.T) {
	big := strings.Repeat("x", 256*1024)
	runValidation(t, []validationCase{
		{name: "bad name", obj: with(newPod(), func(p *corev1.Pod) { p.Name = "Bad_Name" }), namespaced: true,
			want: []want{{"metadata.name", field.ErrorTypeInvalid, "RFC 1123"}}},
		{name: "no name", obj: with(newConfigMap(), func(c *corev1.ConfigMap) { c.Name = "" }), namespaced: true,
			want: []want{{"metadata.name", field.ErrorTypeRequired, "name or generateName is required"}}},
		{name: "generateName ok", obj: with(newConfigMap(), func(c *corev1.ConfigMap) { c.Name = "cfg-abcde"; c.GenerateName = "cfg-" }), namespaced: true},
		{name: "no namespace", obj: with(newConfigMap(), func(c *corev1.ConfigMap) { c.Namespace = "" }), namespaced: true,
			want: []want{{"metadata.namespace", field.ErrorTypeRequired, ""}}},
		{name: "namespace on cluster-scoped", obj: &corev1.Namespace{ObjectMeta: objMeta("team-a")},
			want: []want{{"metadata.namespace", field.ErrorTypeForbidden, "not allowed on this type"}}},
		{name: "bad label value", obj: with(newConfigMap(), func(c *corev1.ConfigMap) { c.Labels = map[string]string{"app": "no spaces"} }), namespaced: true,
			want: []want{{"metadata.labels", field.ErrorTypeInvalid, ""}}},
		{name: "bad label key", obj: with(newConfigMap(), func(c *corev1.ConfigMap) { c.Labels = map[string]string{"a/b/c": "x"} }), namespaced: true,
			want: []want{{"metadata.labels", field.ErrorTypeInvalid, ""}}},
		{name: "bad annotation key", obj: with(newConfigMap(), func(c *corev1.ConfigMap) { c.Annotations = map[string]string{"-x": "y"} }), namespaced: true,
			want: []want{{"metadata.annotations", field.ErrorTypeInvalid, ""}}},
		{name: "annotations too large", obj: with(newConfigMap(), func(c *corev1.ConfigMap) { c.Annotations = map[string]string{"a": big} }), namespaced: true,
			want: []want{{"metadata.annotations", field.ErrorTypeTooLong, ""}}},
		{name: "service name must be DNS-1035", obj: with(newService(), func(s *corev1.Service) { s.Name = "1web" }), namespaced: true,
			want: []want{{"metadata.name", field.ErrorTypeInvalid, "DNS-1035"}}},
		{name: "namespace name must be a label", obj: &corev1.Namespace{ObjectMeta: clusterMeta("team.a")},
			want: []want{{"metadata.name", field.ErrorTypeInvalid, "must not contain dots"}}},
		{name: "statefulset name must be a label", obj: with(newStatefulSet(), func(s *appsv1.StatefulSet) { s.Name = "db.a" }), namespaced: true,
			want: []want{{"metadata.name", field.ErrorTypeInvalid, ""}}},
		{name: "rbac names are path segments", obj: &rbacv1.ClusterRole{ObjectMeta: clusterMeta("system:controller:foo")}},
		{name: "rbac names may not contain slashes", obj: &rbacv1.ClusterRole{ObjectMeta: clusterMeta("a/b")},
			want: []want{{"metadata.name", field.ErrorTypeInvalid, "/"}}},
		{name: "name is immutable", obj: with(newConfigMap(), func(c *corev1.ConfigMap) { c.Name = "other" }), old: newConfigMap(), namespaced: true,
			want: []want{{"metadata.name", field.ErrorTypeInvalid, "field is immutable"}}},
		{name: "uid is immutable", obj: with(newConfigMap(), func(c *corev1.ConfigMap) { c.UID = "b" }),
			old: with(newConfigMap(), func(c *corev1.ConfigMap) { c.UID = "a" }), namespaced: true,
			want: []want{{"metadata.uid", field.ErrorTypeInvalid, "field is immutable"}}},
		{name: "unknown kinds get metadata checks", obj: &corev1.PodTemplate{ObjectMeta: objMeta("Bad_Name"), Template: template(nil)}, namespaced: true,
			want: []want{{"metadata.name", field.ErrorTypeInvalid, ""}}},
	})
	if errs := ValidateCreate(nil, true); len(errs) == 0 {
		t.Errorf("nil object accepted")
	}
	if errs := ValidateUpdate(newPod(), newConfigMap(), true); len(errs) == 0 {
		t.Errorf("update across types accepted")
	}
	if errs := ValidateUpdate((*corev1.Pod)(nil), newPod(), true); len(errs) == 0 {
		t.Errorf("typed nil accepted")
	}
}

func TestValidatePod(t *testing.T) {
	c0 := "spec.containers[0]"
	runValidation(t, []validationCase{
		{name: "valid", obj: newPod(), namespaced: true},
		{name: "no containers", obj: with(newPod(), func(p *corev1.Pod) { p.Spec.Containers = nil }), namespaced: true,
			want: []want{{"spec.containers", field.ErrorTypeRequired, ""}}},
		{name: "no image", obj: with(newPod(), func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }), namespaced: true,
			want: []want{{c0 + ".image", field.ErrorTypeRequired, ""}}},
		{name: "image with spaces", obj: with(newPod(), func(p *corev1.Pod) { p.Spec.Containers[0].Image = " nginx" }), namespaced: true,
			want: []want{{c0 + ".image", field.ErrorTypeInvalid, "whitespace"}}},
		{name: "no container name", obj: with(newPod(), func(p *corev1.Pod) { p.Spec.Containers[0].Name = "" }), namespaced: true,
			want: []want{{c0 + ".name", field.ErrorTypeRequired, ""}}},
		{name: "bad container name", obj: with(newPod(), func(p *corev1.Pod) { p.Spec.Containers[0].Name = "Web_1" }), namespaced: true,
			want: []want{{c0 + ".name", field.ErrorTypeInvalid, ""}}},
		{name: "duplicate container name across init", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "web", Image: "busybox"}}
		}), namespaced: true, want: []want{{c0 + ".name", field.ErrorTypeDuplicate, ""}}},
		{name: "port out of range", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 70000}}
		}), namespaced: true, want: []want{{c0 + ".ports[0].containerPort", field.ErrorTypeInvalid, "between 1 and 65535"}}},
		{name: "port missing", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http"}}
		}), namespaced: true, want: []want{{c0 + ".ports[0].containerPort", field.ErrorTypeRequired, ""}}},
		{name: "bad protocol", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, Protocol: "ICMP"}}
		}), namespaced: true, want: []want{{c0 + ".ports[0].protocol", field.ErrorTypeNotSupported, `"TCP"`}}},
		{name: "bad port name", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, Name: "http_port"}}
		}), namespaced: true, want: []want{{c0 + ".ports[0].name", field.ErrorTypeInvalid, ""}}},
		{name: "duplicate port name", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, Name: "http"}, {ContainerPort: 81, Name: "http"}}
		}), namespaced: true, want: []want{{c0 + ".ports[1].name", field.ErrorTypeDuplicate, ""}}},
		{name: "duplicate host port", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Image: "busybox"})
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
			p.Spec.Containers[1].Ports = []corev1.ContainerPort{{ContainerPort: 81, HostPort: 8080}}
		}), namespaced: true, want: []want{{"spec.containers[1].ports[0].hostPort", field.ErrorTypeDuplicate, ""}}},
		{name: "bad restartPolicy", obj: with(newPod(), func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }), namespaced: true,
			want: []want{{"spec.restartPolicy", field.ErrorTypeNotSupported, ""}}},
		{name: "relaxed env names are fine", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "my-var.x", Value: "1"}}
		}), namespaced: true},
		{name: "bad env name", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A=B", Value: "1"}}
		}), namespaced: true, want: []want{{c0 + ".env[0].name", field.ErrorTypeInvalid, ""}}},
		{name: "env name required", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Value: "1"}}
		}), namespaced: true, want: []want{{c0 + ".env[0].name", field.ErrorTypeRequired, ""}}},
		{name: "env two sources", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
				FieldRef:     &corev1.ObjectFieldSelector{FieldPath: "metadata.name"},
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"},
			}}}
		}), namespaced: true, want: []want{{c0 + ".env[0].valueFrom", field.ErrorTypeInvalid, "more than one field"}}},
		{name: "env no source", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{}}}
		}), namespaced: true, want: []want{{c0 + ".env[0].valueFrom", field.ErrorTypeInvalid, "must specify one of"}}},
		{name: "env bad fieldPath", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nothing"}}}}
		}), namespaced: true, want: []want{{c0 + ".env[0].valueFrom.fieldRef.fieldPath", field.ErrorTypeNotSupported, ""}}},
		{name: "env label fieldPath", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}}}
		}), namespaced: true},
		{name: "requests above limits", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{"cpu": resource.MustParse("1")},
				Requests: corev1.ResourceList{"cpu": resource.MustParse("2")},
			}
		}), namespaced: true, want: []want{{c0 + ".resources.requests", field.ErrorTypeInvalid, "must be less than or equal to cpu limit of 1"}}},
		{name: "unknown resource", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{"gpus": resource.MustParse("1")}}
		}), namespaced: true, want: []want{{c0 + ".resources.limits[gpus]", field.ErrorTypeInvalid, "standard resource for containers"}}},
		{name: "extended resource must be whole and equal", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{"example.com/gpu": resource.MustParse("1")},
				Requests: corev1.ResourceList{"example.com/gpu": resource.MustParse("500m")},
			}
		}), noDefault: true, namespaced: true, want: []want{
			{c0 + ".resources.requests[example.com/gpu]", field.ErrorTypeInvalid, "must be an integer"},
			{c0 + ".resources.requests", field.ErrorTypeInvalid, "must be equal to example.com/gpu limit"},
		}},
		{name: "extreme quantity", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{"cpu": resource.MustParse("1e10000000")},
				Requests: corev1.ResourceList{"cpu": resource.MustParse("1")},
			}
		}), namespaced: true, want: []want{{c0 + ".resources.limits[cpu]", field.ErrorTypeInvalid, "decimal exponent"}}},
		{name: "duplicate volume", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v"}, {Name: "v"}}
		}), namespaced: true, want: []want{{"spec.volumes[1].name", field.ErrorTypeDuplicate, ""}}},
		{name: "bad volume name", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "V_1"}}
		}), namespaced: true, want: []want{{"spec.volumes[0].name", field.ErrorTypeInvalid, ""}}},
		{name: "two volume sources", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{
				EmptyDir: &corev1.EmptyDirVolumeSource{}, Secret: &corev1.SecretVolumeSource{SecretName: "s"}}}}
		}), namespaced: true, want: []want{{"spec.volumes[0].secret", field.ErrorTypeForbidden, "more than 1 volume type"}}},
		{name: "no volume source without defaulting", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v"}}
		}), noDefault: true, namespaced: true, want: []want{{"spec.volumes[0]", field.ErrorTypeRequired, "must specify a volume type"}}},
		{name: "secret volume without name", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{}}}}
		}), namespaced: true, want: []want{{"spec.volumes[0].secret.secretName", field.ErrorTypeRequired, ""}}},
		{name: "mount of unknown volume", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "missing", MountPath: "/data"}}
		}), namespaced: true, want: []want{{c0 + ".volumeMounts[0].name", field.ErrorTypeNotFound, ""}}},
		{name: "mount without path", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "data"}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data"}}
		}), namespaced: true, want: []want{{c0 + ".volumeMounts[0].mountPath", field.ErrorTypeRequired, ""}}},
		{name: "valid mount", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "data"}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data", SubPath: "x"}}
		}), namespaced: true},
		{name: "probe without handler", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{}
		}), namespaced: true, want: []want{{c0 + ".livenessProbe", field.ErrorTypeRequired, "must specify a handler type"}}},
		{name: "probe with two handlers", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
				Exec: &corev1.ExecAction{Command: []string{"true"}}, TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}}
		}), namespaced: true, want: []want{{c0 + ".readinessProbe.tcpSocket", field.ErrorTypeForbidden, "more than 1 handler type"}}},
		{name: "liveness successThreshold", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{SuccessThreshold: 2, ProbeHandler: corev1.ProbeHandler{
				TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}}}
		}), namespaced: true, want: []want{{c0 + ".livenessProbe.successThreshold", field.ErrorTypeInvalid, "must be 1"}}},
		{name: "probe on init container", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox", LivenessProbe: &corev1.Probe{
				ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}}}
		}), namespaced: true, want: []want{{"spec.initContainers[0].livenessProbe", field.ErrorTypeForbidden, "restartPolicy=Always"}}},
		{name: "sidecar may have probes", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "proxy", Image: "envoy", RestartPolicy: ptrTo(corev1.ContainerRestartPolicyAlways),
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}}}
		}), namespaced: true},
		{name: "negative grace period without defaulting", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.TerminationGracePeriodSeconds = ptrTo[int64](-1)
		}), noDefault: true, namespaced: true, want: []want{{"spec.terminationGracePeriodSeconds", field.ErrorTypeInvalid, ""}}},
		{name: "negative grace period is defaulted to 1", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.TerminationGracePeriodSeconds = ptrTo[int64](-1)
		}), namespaced: true},
		{name: "toleration with value and Exists", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, Value: "v"}}
		}), namespaced: true, want: []want{{"spec.tolerations[0].operator", field.ErrorTypeInvalid, "value must be empty"}}},
		{name: "ephemeral containers on create", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: "busybox"}}}
		}), namespaced: true, want: []want{{"spec.ephemeralContainers", field.ErrorTypeForbidden, "cannot be set on create"}}},
		{name: "dnsPolicy None without config", obj: with(newPod(), func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSNone }), namespaced: true,
			want: []want{{"spec.dnsConfig", field.ErrorTypeRequired, ""}}},
		{name: "dnsPolicy None with config", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.DNSPolicy = corev1.DNSNone
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: []string{"svc.cluster.local."}}
		}), namespaced: true},
		{name: "bad nameserver", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"dns.example.com"}}
		}), namespaced: true, want: []want{{"spec.dnsConfig.nameservers[0]", field.ErrorTypeInvalid, ""}}},
		{name: "topology spread", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{
				{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule},
				{MaxSkew: 0, WhenUnsatisfiable: "Maybe"},
			}
		}), namespaced: true, want: []want{
			{"spec.topologySpreadConstraints[1].maxSkew", field.ErrorTypeInvalid, ""},
			{"spec.topologySpreadConstraints[1].topologyKey", field.ErrorTypeRequired, ""},
			{"spec.topologySpreadConstraints[1].whenUnsatisfiable", field.ErrorTypeNotSupported, ""},
		}},
		{name: "projected token too short", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "tok", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptrTo[int64](60)}}}}}}}
		}), namespaced: true, want: []want{{"spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds", field.ErrorTypeInvalid, "10 minutes"}}},
		{name: "bad node selector", obj: with(newPod(), func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"a b": "c"} }), namespaced: true,
			want: []want{{"spec.nodeSelector", field.ErrorTypeInvalid, ""}}},
	})
}

func TestValidatePodUpdate(t *testing.T) {
	running := func() *corev1.Pod {
		p := newPod()
		p.Spec.NodeName = "node-1"
		p.Spec.Tolerations = []corev1.Toleration{{Key: "a", Operator: corev1.TolerationOpExists}}
		p.Spec.ActiveDeadlineSeconds = ptrTo[int64](100)
		return p
	}
	runValidation(t, []validationCase{
		{name: "unchanged", obj: running(), old: running()},
		// The pull policy is part of the spec: Kubernetes defaults a new
		// image's policy too, so a PUT from "nginx" to "nginx:1.27" without
		// imagePullPolicy is refused there as well (apply and set image
		// patch, keeping it).
		{name: "image", obj: with(running(), func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.27" }),
			old: with(running(), func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.26" })},
		{name: "image changes default pull policy", obj: with(running(), func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.27" }), old: running(),
			want: []want{{"spec", field.ErrorTypeForbidden, "spec.containers[0]"}}},
		{name: "labels", obj: with(running(), func(p *corev1.Pod) { p.Labels = map[string]string{"x": "y"} }), old: running()},
		{name: "add toleration", obj: with(running(), func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "b", Operator: corev1.TolerationOpExists})
		}), old: running()},
		{name: "shorter deadline", obj: with(running(), func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptrTo[int64](50) }), old: running()},
		{name: "longer deadline", obj: with(running(), func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptrTo[int64](500) }), old: running(),
			want: []want{{"spec.activeDeadlineSeconds", field.ErrorTypeInvalid, "less than or equal to previous value"}}},
		{name: "remove toleration", obj: with(running(), func(p *corev1.Pod) { p.Spec.Tolerations = nil }), old: running(),
			want: []want{{"spec.tolerations", field.ErrorTypeForbidden, ""}}},
		{name: "ports", obj: with(running(), func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
		}), old: running(), want: []want{{"spec", field.ErrorTypeForbidden, "pod updates may not change fields other than `spec.containers[*].image`"}}},
		{name: "node name", obj: with(running(), func(p *corev1.Pod) { p.Spec.NodeName = "node-2" }), old: running(),
			want: []want{{"spec", field.ErrorTypeForbidden, "spec.nodeName"}}},
		{name: "add container", obj: with(running(), func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Image: "busybox"})
		}), old: running(), want: []want{{"spec.containers", field.ErrorTypeForbidden, "may not add or remove containers"}}},
		{name: "gated pod gains node selector and loses gate", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"zone": "a"}
		}), old: with(newPod(), func(p *corev1.Pod) { p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/wait"}} })},
		{name: "gated pod changes node selector", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"zone": "b"}
		}), old: with(newPod(), func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"zone": "a"}
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/wait"}}
		}), want: []want{{"spec", field.ErrorTypeForbidden, "spec.nodeSelector"}}},
		{name: "new scheduling gate", obj: with(newPod(), func(p *corev1.Pod) {
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/wait"}}
		}), old: newPod(), want: []want{{"spec.schedulingGates[0]", field.ErrorTypeForbidden, "only deletion is allowed"}}},
		{name: "name", obj: with(running(), func(p *corev1.Pod) { p.Name = "other" }), old: running(),
			want: []want{{"metadata.name", field.ErrorTypeInvalid, "field is immutable"}}},
	})
}

func TestValidateApps(t *testing.T) {
	tp := "spec.template.spec"
	runValidation(t, []validationCase{
		{name: "deployment valid", obj: newDeployment(), namespaced: true},
		{name: "deployment selector mismatch", obj: with(newDeployment(), func(d *appsv1.Deployment) {
			d.Spec.Template.Labels = map[string]string{"app": "other"}
		}), namespaced: true, want: []want{{"spec.template.metadata.labels", field.ErrorTypeInvalid, "`selector` does not match template `labels`"}}},
		{name: "deployment no selector", obj: with(newDeployment(), func(d *appsv1.Deployment) { d.Spec.Selector = nil }), namespaced: true,
			want: []want{{"spec.selector", field.ErrorTypeRequired, ""}}},
		{name: "deployment empty selector", obj: with(newDeployment(), func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{}
		}), namespaced: true, want: []want{{"spec.selector", field.ErrorTypeInvalid, "empty selector is invalid for deployment"}}},
		{name: "deployment bad selector operator", obj: with(newDeployment(), func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Maybe"}}}
		}), namespaced: true, want: []want{{"spec.selector.matchExpressions[0].operator", field.ErrorTypeInvalid, ""}}},
		{name: "deployment negative replicas", obj: with(newDeployment(), func(d *appsv1.Deployment) { d.Spec.Replicas = ptrTo[int32](-1) }), namespaced: true,
			want: []want{{"spec.replicas", field.ErrorTypeInvalid, "must be greater than or equal to 0"}}},
		{name: "deployment bad strategy", obj: with(newDeployment(), func(d *appsv1.Deployment) { d.Spec.Strategy.Type = "BlueGreen" }), namespaced: true,
			want: []want{{"spec.strategy", field.ErrorTypeNotSupported, ""}}},
		{name: "deployment recreate with rollingUpdate", obj: with(newDeployment(), func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{}}
		}), namespaced: true, want: []want{{"spec.strategy.rollingUpdate", field.ErrorTypeForbidden, ""}}},
		{name: "deployment recreate", obj: with(newDeployment(), func(d *appsv1.Deployment) {
			d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
		}), namespaced: true},
		{name: "deployment zero surge and unavailable", obj: with(newDeployment(), func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxUnavailable: ptrTo(intstr.FromInt32(0)), MaxSurge: ptrTo(intstr.FromString("0%"))}
		}), namespaced: true, want: []want{{"spec.strategy.rollingUpdate.maxUnavailable", field.ErrorTypeInvalid, "may not be 0 when `maxSurge` is 0"}}},
		{name: "deployment maxUnavailable over 100%", obj: with(newDeployment(), func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxUnavailable: ptrTo(intstr.FromString("150%"))}
		}), namespaced: true, want: []want{{"spec.strategy.rollingUpdate.maxUnavailable", field.ErrorTypeInvalid, "100%"}}},
		{name: "deployment template restartPolicy", obj: with(newDeployment(), func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
		}), namespaced: true, want: []want{{tp + ".restartPolicy", field.ErrorTypeNotSupported, `"Always"`}}},
		{name: "deployment template image", obj: with(newDeployment(), func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Image = ""
		}), namespaced: true, want: []want{{tp + ".containers[0].image", field.ErrorTypeRequired, ""}}},
		{name: "deployment template label", obj: with(newDeployment(), func(d *appsv1.Deployment) {
			d.Spec.Template.Labels["bad key!"] = "x"
		}), namespaced: true, want: []want{{"spec.template.labels", field.ErrorTypeInvalid, ""}}},
		{name: "deployment progress deadline", obj: with(newDeployment(), func(d *appsv1.Deployment) {
			d.Spec.MinReadySeconds = 700
		}), namespaced: true, want: []want{{"spec.progressDeadlineSeconds", field.ErrorTypeInvalid, "must be greater than minReadySeconds"}}},
		{name: "deployment selector immutable", obj: with(newDeployment(), func(d *appsv1.Deployment) {
			d.Spec.Selector.MatchLabels["tier"] = "front"
			d.Spec.Template.Labels["tier"] = "front"
		}), old: newDeployment(), namespaced: true, want: []want{{"spec.selector", field.ErrorTypeInvalid, "field is immutable"}}},
		{name: "deployment scale and new image", obj: with(newDeployment(), func(d *appsv1.Deployment) {
			d.Spec.Replicas = ptrTo[int32](5)
			d.Spec.Template.Spec.Containers[0].Image = "nginx:1.27"
		}), old: newDeployment(), namespaced: true},

		{name: "replicaset valid", obj: newReplicaSet(), namespaced: true},
		{name: "replicaset mismatch", obj: with(newReplicaSet(), func(r *appsv1.ReplicaSet) { r.Spec.Template.Labels = nil }), namespaced: true,
			want: []want{{"spec.template.metadata.labels", field.ErrorTypeInvalid, "does not match"}}},
		{name: "replicaset selector immutable", obj: with(newReplicaSet(), func(r *appsv1.ReplicaSet) {
			r.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "x": "y"}}
			r.Spec.Template.Labels["x"] = "y"
		}), old: newReplicaSet(), namespaced: true, want: []want{{"spec.selector", field.ErrorTypeInvalid, "field is immutable"}}},

		{name: "statefulset valid", obj: newStatefulSet(), namespaced: true},
		{name: "statefulset bad pod management", obj: with(newStatefulSet(), func(s *appsv1.StatefulSet) { s.Spec.PodManagementPolicy = "Random" }), namespaced: true,
			want: []want{{"spec.podManagementPolicy", field.ErrorTypeInvalid, "must be 'OrderedReady' or 'Parallel'"}}},
		{name: "statefulset mounts its claim template", obj: with(newStatefulSet(), func(s *appsv1.StatefulSet) {
			s.Spec.Template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		}), namespaced: true},
		{name: "statefulset claim template replaces a template volume", obj: with(newStatefulSet(), func(s *appsv1.StatefulSet) {
			s.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			s.Spec.Template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		}), namespaced: true},
		{name: "statefulset mounts an unknown volume", obj: with(newStatefulSet(), func(s *appsv1.StatefulSet) {
			s.Spec.Template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "logs", MountPath: "/logs"}}
		}), namespaced: true, want: []want{{"spec.template.spec.containers[0].volumeMounts[0].name", field.ErrorTypeNotFound, ""}}},
		{name: "statefulset claim without storage", obj: with(newStatefulSet(), func(s *appsv1.StatefulSet) {
			s.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests = nil
		}), namespaced: true, want: []want{{"spec.volumeClaimTemplates[0].spec.resources[storage]", field.ErrorTypeRequired, ""}}},
		{name: "statefulset scale and new template", obj: with(newStatefulSet(), func(s *appsv1.StatefulSet) {
			s.Spec.Replicas = ptrTo[int32](3)
			s.Spec.Template.Spec.Containers[0].Image = "postgres:17"
		}), old: newStatefulSet(), namespaced: true},
		{name: "statefulset service name fixed", obj: with(newStatefulSet(), func(s *appsv1.StatefulSet) { s.Spec.ServiceName = "other" }),
			old: newStatefulSet(), namespaced: true, want: []want{{"spec", field.ErrorTypeForbidden, "updates to statefulset spec for fields other than"}}},

		{name: "daemonset valid", obj: newDaemonSet(), namespaced: true},
		{name: "daemonset surge and unavailable", obj: with(newDaemonSet(), func(d *appsv1.DaemonSet) {
			d.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptrTo(intstr.FromInt32(1)), MaxSurge: ptrTo(intstr.FromInt32(1))}
		}), namespaced: true, want: []want{{"spec.updateStrategy.rollingUpdate.maxSurge", field.ErrorTypeInvalid, "may not be set when maxUnavailable is non-zero"}}},
		{name: "daemonset both zero", obj: with(newDaemonSet(), func(d *appsv1.DaemonSet) {
			d.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptrTo(intstr.FromInt32(0))}
		}), namespaced: true, want: []want{{"spec.updateStrategy.rollingUpdate.maxUnavailable", field.ErrorTypeRequired, "cannot be 0 when maxSurge is 0"}}},
		{name: "daemonset bad strategy", obj: with(newDaemonSet(), func(d *appsv1.DaemonSet) { d.Spec.UpdateStrategy.Type = "Sometimes" }), namespaced: true,
			want: []want{{"spec.updateStrategy", field.ErrorTypeNotSupported, ""}}},
		{name: "daemonset deadline", obj: with(newDaemonSet(), func(d *appsv1.DaemonSet) {
			d.Spec.Template.Spec.ActiveDeadlineSeconds = ptrTo[int64](10)
		}), namespaced: true, want: []want{{tp + ".activeDeadlineSeconds", field.ErrorTypeForbidden, "DaemonSet"}}},
		{name: "daemonset selector immutable", obj: with(newDaemonSet(), func(d *appsv1.DaemonSet) {
			d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent", "v": "2"}}
			d.Spec.Template.Labels["v"] = "2"
		}), old: newDaemonSet(), namespaced: true, want: []want{{"spec.selector", field.ErrorTypeInvalid, "field is immutable"}}},
	})
}

func TestValidateBatch(t *testing.T) {
	runValidation(t, []validationCase{
		{name: "job valid", obj: newJob(), namespaced: true},
		{name: "job manual selector", obj: with(newJob(), func(j *batchv1.Job) {
			j.UID = ""
			j.Spec.ManualSelector = ptrTo(true)
			j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pi"}}
			j.Spec.Template.Labels = map[string]string{"app": "pi"}
		}), namespaced: true},
		{name: "job restartPolicy missing", obj: with(newJob(), func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = "" }), namespaced: true,
			want: []want{{"spec.template.spec.restartPolicy", field.ErrorTypeRequired, `valid values: "OnFailure", "Never"`}}},
		{name: "job restartPolicy Always", obj: with(newJob(), func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways }), namespaced: true,
			want: []want{{"spec.template.spec.restartPolicy", field.ErrorTypeRequired, `valid values: "OnFailure", "Never"`}}},
		{name: "job negative parallelism", obj: with(newJob(), func(j *batchv1.Job) { j.Spec.Parallelism = ptrTo[int32](-1) }), namespaced: true,
			want: []want{{"spec.parallelism", field.ErrorTypeInvalid, ""}}},
		{name: "job negative completions", obj: with(newJob(), func(j *batchv1.Job) { j.Spec.Completions = ptrTo[int32](-1) }), namespaced: true,
			want: []want{{"spec.completions", field.ErrorTypeInvalid, ""}}},
		{name: "job selector not generated", obj: with(newJob(), func(j *batchv1.Job) { j.Spec.Selector = nil; j.UID = "" }), namespaced: true,
			want: []want{{"spec.selector", field.ErrorTypeRequired, ""}}},
		{name: "job foreign selector", obj: with(newJob(), func(j *batchv1.Job) {
			j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"job-name": "other"}}
		}), namespaced: true, want: []want{{"spec.selector", field.ErrorTypeInvalid, "`selector` not auto-generated"}}},
		{name: "job indexed without completions", obj: with(newJob(), func(j *batchv1.Job) {
			j.Spec.CompletionMode = ptrTo(batchv1.IndexedCompletion)
			j.Spec.Parallelism = ptrTo[int32](2)
		}), namespaced: true, want: []want{{"spec.completions", field.ErrorTypeRequired, "Indexed"}}},
		{name: "job template immutable", obj: with(newJob(), func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Image = "perl" }),
			old: newJob(), namespaced: true, want: []want{{"spec.template", field.ErrorTypeInvalid, "field is immutable"}}},
		{name: "job selector immutable", obj: with(newJob(), func(j *batchv1.Job) {
			j.Spec.Selector.MatchLabels["x"] = "y"
			j.Spec.Template.Labels["x"] = "y"
		}), old: newJob(), namespaced: true, want: []want{{"spec.selector", field.ErrorTypeInvalid, "field is immutable"}}},
		{name: "job suspend and parallelism", obj: with(newJob(), func(j *batchv1.Job) {
			j.Spec.Suspend = ptrTo(true)
			j.Spec.Parallelism = ptrTo[int32](0)
			j.Spec.Completions = ptrTo[int32](1)
		}), old: newJob(), namespaced: true},
		{name: "suspended job gets node selector", obj: with(newJob(), func(j *batchv1.Job) {
			j.Spec.Suspend = ptrTo(true)
			j.Spec.Template.Spec.NodeSelector = map[string]string{"zone": "a"}
		}), old: with(newJob(), func(j *batchv1.Job) { j.Spec.Suspend = ptrTo(true) }), namespaced: true},

		{name: "cronjob valid", obj: newCronJob(), namespaced: true},
		{name: "cronjob descriptor", obj: with(newCronJob(), func(c *batchv1.CronJob) { c.Spec.Schedule = "@hourly" }), namespaced: true},
		{name: "cronjob no schedule", obj: with(newCronJob(), func(c *batchv1.CronJob) { c.Spec.Schedule = "" }), namespaced: true,
			want: []want{{"spec.schedule", field.ErrorTypeRequired, ""}}},
		{name: "cronjob bad schedule", obj: with(newCronJob(), func(c *batchv1.CronJob) { c.Spec.Schedule = "* * *" }), namespaced: true,
			want: []want{{"spec.schedule", field.ErrorTypeInvalid, "expected exactly 5 fields, found 3: [* * *]"}}},
		{name: "cronjob TZ in schedule", obj: with(newCronJob(), func(c *batchv1.CronJob) { c.Spec.Schedule = "TZ=UTC 0 * * * *" }), namespaced: true,
			want: []want{{"spec.schedule", field.ErrorTypeInvalid, "use timeZone field instead"}}},
		{name: "cronjob TZ kept on update", obj: with(newCronJob(), func(c *batchv1.CronJob) { c.Spec.Schedule = "TZ=UTC 30 * * * *" }),
			old: with(newCronJob(), func(c *batchv1.CronJob) { c.Spec.Schedule = "TZ=UTC 0 * * * *" }), namespaced: true},
		{name: "cronjob TZ added on update", obj: with(newCronJob(), func(c *batchv1.CronJob) { c.Spec.Schedule = "CRON_TZ=UTC 0 * * * *" }),
			old: newCronJob(), namespaced: true,
			want: []want{{"spec.schedule", field.ErrorTypeInvalid, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"}}},
		{name: "cronjob TZ and timeZone", obj: with(newCronJob(), func(c *batchv1.CronJob) {
			c.Spec.Schedule = "TZ=UTC 0 * * * *"
			c.Spec.TimeZone = ptrTo("Europe/Paris")
		}), old: with(newCronJob(), func(c *batchv1.CronJob) { c.Spec.Schedule = "TZ=UTC 0 * * * *" }), namespaced: true,
			want: []want{{"spec.schedule", field.ErrorTypeInvalid, "cannot use both timeZone field and TZ or CRON_TZ in schedule"}}},
		{name: "cronjob bad TZ kept on update", obj: with(newCronJob(), func(c *batchv1.CronJob) { c.Spec.Schedule = "TZ=Mars/Olympus 0 * * * *" }),
			old: with(newCronJob(), func(c *batchv1.CronJob) { c.Spec.Schedule = "TZ=UTC 0 * * * *" }), namespaced: true,
			want: []want{{"spec.schedule", field.ErrorTypeInvalid, "provided bad location Mars/Olympus"}}},
		{name: "cronjob out of range", obj: with(newCronJob(), func(c *batchv1.CronJob) { c.Spec.Schedule = "0 24 * * *" }), namespaced: true,
			want: []want{{"spec.schedule", field.ErrorTypeInvalid, "end of range (24) above maximum (23): 24"}}},
		{name: "cronjob every", obj: with(newCronJob(), func(c *batchv1.CronJob) { c.Spec.Schedule = "@every 90s" }), namespaced: true},
		{name: "cronjob time zone", obj: with(newCronJob(), func(c *batchv1.CronJob) { c.Spec.TimeZone = ptrTo("Europe/Paris") }), namespaced: true},
		{name: "cronjob bad time zone", obj: with(newCronJob(), func(c *batchv1.CronJob) { c.Spec.TimeZone = ptrTo("Mars/Olympus") }), namespaced: true,
			want: []want{{"spec.timeZone", field.ErrorTypeInvalid, ""}}},
		{name: "cronjob long name", obj: with(newCronJob(), func(c *batchv1.CronJob) { c.Name = strings.Repeat("a", 53) }), namespaced: true,
			want: []want{{"metadata.name", field.ErrorTypeInvalid, "must be no more than 52 characters"}}},
		{name: "cronjob job restartPolicy", obj: with(newCronJob(), func(c *batchv1.CronJob) {
			c.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy = ""
		}), namespaced: true, want: []want{{"spec.jobTemplate.spec.template.spec.restartPolicy", field.ErrorTypeRequired, ""}}},
		{name: "cronjob job selector", obj: with(newCronJob(), func(c *batchv1.CronJob) {
			c.Spec.JobTemplate.Spec.Selector = &metav1.LabelSelector{}
		}), namespaced: true, want: []want{{"spec.jobTemplate.spec.selector", field.ErrorTypeInvalid, "will be auto-generated"}}},
		{name: "cronjob bad concurrency", obj: with(newCronJob(), func(c *batchv1.CronJob) { c.Spec.ConcurrencyPolicy = "Sometimes" }), namespaced: true,
			want: []want{{"spec.concurrencyPolicy", field.ErrorTypeNotSupported, ""}}},
	})
}

func TestGenerateJobSelector(t *testing.T) {
	j := newJob()
	if j.Spec.Selector.MatchLabels[jobControllerUIDLabel] != string(j.UID) || j.Spec.Template.Labels[legacyJobNameLabel] != "pi" {
		t.Fatalf("generated: selector %v labels %v", j.Spec.Selector, j.Spec.Template.Labels)
	}
	manual := &batchv1.Job{Spec: batchv1.JobSpec{ManualSelector: ptrTo(true)}}
	GenerateJobSelector(manual)
	if manual.Spec.Selector != nil {
		t.Errorf("manual selector overwritten")
	}
	GenerateJobSelector(nil)
}

func TestParseCron(t *testing.T) {
	for spec, wantErr := range map[string]string{
		"* * * * *":                 "",
		"*/15 0-6 1,15 jan-mar mon": "",
		"0 0 ? * SUN":               "",
		"5 4 * * 0-6/2":             "",
		"@every 1h30m":              "",
		"@midnight":                 "",
		"":                          "empty spec string",
		"* * * *":                   "expected exactly 5 fields, found 4: [* * * *]",
		"60 * * * *":                "end of range (60) above maximum (59): 60",
		"* * 0 * *":                 "beginning of range (0) below minimum (1): 0",
		"0 0 * * 7":                 "end of range (7) above maximum (6): 7",
		"5-1 * * * *":               "beginning of range (5) beyond end of range (1): 5-1",
		"*/0 * * * *":               "step of range should be a positive number: */0",
		"1-2-3 * * * *":             "too many hyphens: 1-2-3",
		"*/2/2 * * * *":             "too many slashes: */2/2",
		"x * * * *":                 "failed to parse int from x",
		"@fortnightly":              "unrecognized descriptor: @fortnightly",
		"@every forever":            "failed to parse duration @every forever",
		// A zone prefix is the parser's business (whether one is allowed is
		// validateCronJob's): valid zones parse, unknown ones are named, and
		// a prefix with nothing after it is an error, not a panic.
		"CRON_TZ=Europe/Paris 0 9 * * mon-fri": "",
		"TZ=UTC @daily":                        "",
		"TZ=Mars/Olympus 0 * * * *":            "provided bad location Mars/Olympus",
		"TZ=UTC":                               "expected exactly 5 fields, found 0",
		"CRON_TZ=UTC":                          "expected exactly 5 fields, found 0",
		// The parser checks ranges, not dates, as Kubernetes does: 31
		// February is accepted (the controller never finds a time for it).
		"0 0 31 2 *": "",
	} {
		err := parseCron(spec)
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%q: unexpected error %v", spec, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%q: error %v, want %q", spec, err, wantErr)
		}
	}
}

func TestValidateService(t *testing.T) {
	nodePort := func(port int32) *corev1.Service {
		s := newService()
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = port
		return s
	}
	allocated := func() *corev1.Service {
		s := newService()
		s.Spec.ClusterIP = "10.96.0.10"
		return s
	}
	runValidation(t, []validationCase{
		{name: "valid", obj: newService(), namespaced: true},
		{name: "no ports", obj: with(newService(), func(s *corev1.Service) { s.Spec.Ports = nil }), namespaced: true,
			want: []want{{"spec.ports", field.ErrorTypeRequired, ""}}},
		{name: "headless without ports", obj: with(newService(), func(s *corev1.Service) { s.Spec.Ports = nil; s.Spec.ClusterIP = "None" }), namespaced: true},
		{name: "port zero", obj: with(newService(), func(s *corev1.Service) { s.Spec.Ports[0].Port = 0 }), namespaced: true,
			want: []want{{"spec.ports[0].port", field.ErrorTypeInvalid, ""}}},
		{name: "unnamed ports", obj: with(newService(), func(s *corev1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: 443})
		}), namespaced: true, want: []want{{"spec.ports[0].name", field.ErrorTypeRequired, ""}, {"spec.ports[1].name", field.ErrorTypeRequired, ""}}},
		{name: "duplicate port names", obj: with(newService(), func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "http", Port: 81}}
		}), namespaced: true, want: []want{{"spec.ports[1].name", field.ErrorTypeDuplicate, ""}}},
		{name: "duplicate ports", obj: with(newService(), func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "a", Port: 80}, {Name: "b", Port: 80}}
		}), namespaced: true, want: []want{{"spec.ports[1]", field.ErrorTypeDuplicate, ""}}},
		{name: "bad type", obj: with(newService(), func(s *corev1.Service) { s.Spec.Type = "Public" }), namespaced: true,
			want: []want{{"spec.type", field.ErrorTypeNotSupported, ""}}},
		{name: "nodePort in range", obj: nodePort(30080), namespaced: true},
		{name: "nodePort out of range", obj: nodePort(80), namespaced: true,
			want: []want{{"spec.ports[0].nodePort", field.ErrorTypeInvalid, "The range of valid ports is 30000-32767"}}},
		{name: "nodePort on ClusterIP", obj: with(newService(), func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30080 }), namespaced: true,
			want: []want{{"spec.ports[0].nodePort", field.ErrorTypeForbidden, "ClusterIP"}}},
		{name: "headless NodePort", obj: with(nodePort(0), func(s *corev1.Service) { s.Spec.ClusterIP = "None" }), namespaced: true,
			want: []want{{"spec.clusterIPs[0]", field.ErrorTypeInvalid, "may not be set to 'None'"}}},
		{name: "ExternalName without name", obj: &corev1.Service{ObjectMeta: objMeta("db"), Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName}}, namespaced: true,
			want: []want{{"spec.externalName", field.ErrorTypeRequired, ""}}},
		{name: "ExternalName bad name", obj: &corev1.Service{ObjectMeta: objMeta("db"), Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "not_a_host"}}, namespaced: true,
			want: []want{{"spec.externalName", field.ErrorTypeInvalid, ""}}},
		{name: "bad cluster IP", obj: with(newService(), func(s *corev1.Service) { s.Spec.ClusterIP = "10.0.0.300" }), namespaced: true,
			want: []want{{"spec.clusterIPs[0]", field.ErrorTypeInvalid, "valid IP"}}},
		{name: "bad target port", obj: with(newService(), func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("Not_A_Name") }), namespaced: true,
			want: []want{{"spec.ports[0].targetPort", field.ErrorTypeInvalid, ""}}},
		{name: "bad selector", obj: with(newService(), func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "a b"} }), namespaced: true,
			want: []want{{"spec.selector", field.ErrorTypeInvalid, ""}}},
		{name: "source ranges on ClusterIP", obj: with(newService(), func(s *corev1.Service) { s.Spec.LoadBalancerSourceRanges = []string{"10.0.0.0/8"} }), namespaced: true,
			want: []want{{"spec.LoadBalancerSourceRanges", field.ErrorTypeForbidden, ""}}},
		{name: "update keeps cluster IP", obj: with(allocated(), func(s *corev1.Service) { s.Spec.Ports[0].Port = 8080 }), old: allocated(), namespaced: true},
		{name: "update changes cluster IP", obj: with(allocated(), func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.11"; s.Spec.ClusterIPs = nil }),
			old: allocated(), namespaced: true, want: []want{{"spec.clusterIPs[0]", field.ErrorTypeInvalid, "may not change once set"}}},
		{name: "update to ExternalName", obj: &corev1.Service{ObjectMeta: objMeta("web"), Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeExternalName, ExternalName: "web.example.com"}}, old: allocated(), namespaced: true},
	})
}

func TestValidateConfigAndSecrets(t *testing.T) {
	immutableCM := func() *corev1.ConfigMap {
		c := newConfigMap()
		c.Immutable = ptrTo(true)
		return c
	}
	tls := func() *corev1.Secret {
		return &corev1.Secret{ObjectMeta: objMeta("tls"), Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k")}}
	}
	runValidation(t, []validationCase{
		{name: "configmap valid", obj: newConfigMap(), namespaced: true},
		{name: "configmap bad key", obj: with(newConfigMap(), func(c *corev1.ConfigMap) { c.Data["bad key!"] = "x" }), namespaced: true,
			want: []want{{"data[bad key!]", field.ErrorTypeInvalid, ""}}},
		{name: "configmap key in both", obj: with(newConfigMap(), func(c *corev1.ConfigMap) {
			c.BinaryData = map[string][]byte{"app.properties": []byte("x")}
		}), namespaced: true, want: []want{{"data[app.properties]", field.ErrorTypeInvalid, "duplicate of key present in binaryData"},
			{"binaryData[app.properties]", field.ErrorTypeInvalid, "duplicate of key present in data"}}},
		{name: "configmap too large", obj: with(newConfigMap(), func(c *corev1.ConfigMap) {
			c.Data["big"] = strings.Repeat("x", 1<<20)
		}), namespaced: true, want: []want{{"[]", field.ErrorTypeTooLong, ""}}},
		{name: "configmap immutable data", obj: with(immutableCM(), func(c *corev1.ConfigMap) { c.Data["new"] = "x" }), old: immutableCM(), namespaced: true,
			want: []want{{"data", field.ErrorTypeForbidden, "field is immutable when `immutable` is set"}}},
		{name: "configmap immutable unset", obj: with(immutableCM(), func(c *corev1.ConfigMap) { c.Immutable = nil }), old: immutableCM(), namespaced: true,
			want: []want{{"immutable", field.ErrorTypeForbidden, ""}}},
		{name: "configmap mutable update", obj: with(newConfigMap(), func(c *corev1.ConfigMap) { c.Data["new"] = "x" }), old: newConfigMap(), namespaced: true},

		{name: "secret valid", obj: newSecret(), namespaced: true},
		{name: "secret stringData", obj: &corev1.Secret{ObjectMeta: objMeta("s"), StringData: map[string]string{"token": "x"}}, namespaced: true},
		{name: "secret bad key", obj: with(newSecret(), func(s *corev1.Secret) { s.Data["a/b"] = nil }), namespaced: true,
			want: []want{{"data[a/b]", field.ErrorTypeInvalid, ""}}},
		{name: "secret too large", obj: with(newSecret(), func(s *corev1.Secret) { s.Data["big"] = make([]byte, 1<<20) }), namespaced: true,
			want: []want{{"data", field.ErrorTypeTooLong, ""}}},
		{name: "tls valid", obj: tls(), namespaced: true},
		{name: "tls missing keys", obj: &corev1.Secret{ObjectMeta: objMeta("tls"), Type: corev1.SecretTypeTLS}, namespaced: true,
			want: []want{{"data[tls.crt]", field.ErrorTypeRequired, ""}, {"data[tls.key]", field.ErrorTypeRequired, ""}}},
		{name: "dockerconfigjson missing", obj: &corev1.Secret{ObjectMeta: objMeta("pull"), Type: corev1.SecretTypeDockerConfigJson}, namespaced: true,
			want: []want{{"data[.dockerconfigjson]", field.ErrorTypeRequired, ""}}},
		{name: "dockerconfigjson not json", obj: &corev1.Secret{ObjectMeta: objMeta("pull"), Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{".dockerconfigjson": []byte("{")}}, namespaced: true,
			want: []want{{"data[.dockerconfigjson]", field.ErrorTypeInvalid, ""}}},
		{name: "basic auth", obj: &corev1.Secret{ObjectMeta: objMeta("ba"), Type: corev1.SecretTypeBasicAuth}, namespaced: true,
			want: []want{{"data[username]", field.ErrorTypeRequired, ""}}},
		{name: "secret type immutable", obj: with(tls(), func(s *corev1.Secret) { s.Type = corev1.SecretTypeOpaque }), old: tls(), namespaced: true,
			want: []want{{"type", field.ErrorTypeInvalid, "field is immutable"}}},
		{name: "immutable secret data", obj: with(newSecret(), func(s *corev1.Secret) { s.Immutable = ptrTo(true); s.Data["x"] = nil }),
			old: with(newSecret(), func(s *corev1.Secret) { s.Immutable = ptrTo(true) }), namespaced: true,
			want: []want{{"data", field.ErrorTypeForbidden, "field is immutable when `immutable` is set"}}},
	})
}

func TestValidateClusterKinds(t *testing.T) {
	node := func() *corev1.Node { return &corev1.Node{ObjectMeta: clusterMeta("node-1.example.com")} }
	rc := func() *nodev1.RuntimeClass {
		return &nodev1.RuntimeClass{ObjectMeta: clusterMeta("wasm"), Handler: "wasm"}
	}
	sc := func() *storagev1.StorageClass {
		return &storagev1.StorageClass{ObjectMeta: clusterMeta("fast"), Provisioner: "example.com/disk", Parameters: map[string]string{"type": "ssd"}}
	}
	pv := func() *corev1.PersistentVolume {
		return &corev1.PersistentVolume{ObjectMeta: clusterMeta("pv1"), Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{"storage": resource.MustParse("1Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/data"}},
		}}
	}
	runValidation(t, []validationCase{
		{name: "namespace valid", obj: &corev1.Namespace{ObjectMeta: clusterMeta("team-a")}},
		{name: "namespace bad finalizer", obj: &corev1.Namespace{ObjectMeta: clusterMeta("team-a"), Spec: corev1.NamespaceSpec{
			Finalizers: []corev1.FinalizerName{"custom"}}}, want: []want{{"spec.finalizers[0]", field.ErrorTypeInvalid, ""}}},
		{name: "node valid", obj: node()},
		{name: "node bad taint", obj: with(node(), func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: "Sometimes"}}
		}), want: []want{{"spec.taints[0].effect", field.ErrorTypeNotSupported, ""}}},
		{name: "node podCIDR fixed", obj: with(node(), func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.1.0.0/24"} }),
			old:  with(node(), func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.0.0.0/24"} }),
			want: []want{{"spec.podCIDRs", field.ErrorTypeForbidden, ""}}},
		{name: "runtimeclass valid", obj: rc()},
		{name: "runtimeclass no handler", obj: with(rc(), func(r *nodev1.RuntimeClass) { r.Handler = "" }),
			want: []want{{"handler", field.ErrorTypeRequired, ""}}},
		{name: "runtimeclass bad handler", obj: with(rc(), func(r *nodev1.RuntimeClass) { r.Handler = "Wasm_Time" }),
			want: []want{{"handler", field.ErrorTypeInvalid, ""}}},
		{name: "runtimeclass handler immutable", obj: with(rc(), func(r *nodev1.RuntimeClass) { r.Handler = "runc" }), old: rc(),
			want: []want{{"handler", field.ErrorTypeInvalid, "field is immutable"}}},
		{name: "storageclass valid", obj: sc()},
		{name: "storageclass no provisioner", obj: with(sc(), func(s *storagev1.StorageClass) { s.Provisioner = "" }),
			want: []want{{"provisioner", field.ErrorTypeRequired, ""}}},
		{name: "storageclass parameters fixed", obj: with(sc(), func(s *storagev1.StorageClass) { s.Parameters["type"] = "hdd" }), old: sc(),
			want: []want{{"parameters", field.ErrorTypeForbidden, "updates to parameters are forbidden."}}},
		{name: "pv valid", obj: pv()},
		{name: "pv no capacity", obj: with(pv(), func(p *corev1.PersistentVolume) { p.Spec.Capacity = nil }),
			want: []want{{"spec.capacity", field.ErrorTypeRequired, ""}}},
		{name: "pv no source", obj: with(pv(), func(p *corev1.PersistentVolume) { p.Spec.HostPath = nil }),
			want: []want{{"spec", field.ErrorTypeRequired, "must specify a volume type"}}},
		{name: "clusterrole valid", obj: &rbacv1.ClusterRole{ObjectMeta: clusterMeta("view"), Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
			{NonResourceURLs: []string{"/healthz"}, Verbs: []string{"get"}},
		}}},
		{name: "clusterrolebinding sa without namespace", obj: &rbacv1.ClusterRoleBinding{ObjectMeta: clusterMeta("view"),
			RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"}, Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default"}}},
			want: []want{{"subjects[0].namespace", field.ErrorTypeRequired, ""}}},
		{name: "clusterrolebinding to Role", obj: &rbacv1.ClusterRoleBinding{ObjectMeta: clusterMeta("view"),
			RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "view"}},
			want: []want{{"roleRef.kind", field.ErrorTypeNotSupported, ""}}},
	})
}

func TestValidateNamespacedKinds(t *testing.T) {
	exact := networkingv1.PathTypeExact
	np := func() *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: objMeta("deny"), Spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: ptrTo(intstr.FromInt32(80))}},
			}},
		}}
	}
	pdb := func() *policyv1.PodDisruptionBudget {
		return &policyv1.PodDisruptionBudget{ObjectMeta: objMeta("web"), Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptrTo(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: appLabels}}}
	}
	slice := func() *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: objMeta("web-abc"), AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}},
			Ports:     []discoveryv1.EndpointPort{{Name: ptrTo("http"), Port: ptrTo[int32](80)}}}
	}
	runValidation(t, []validationCase{
		{name: "ingress valid", obj: newIngress(), namespaced: true},
		{name: "ingress relative path", obj: with(newIngress(), func(i *networkingv1.Ingress) { i.Spec.Rules[0].HTTP.Paths[0].Path = "api" }), namespaced: true,
			want: []want{{"spec.rules[0].http.paths[0].path", field.ErrorTypeInvalid, "must be an absolute path"}}},
		{name: "ingress no pathType", obj: with(newIngress(), func(i *networkingv1.Ingress) { i.Spec.Rules[0].HTTP.Paths[0].PathType = nil }), namespaced: true,
			want: []want{{"spec.rules[0].http.paths[0].pathType", field.ErrorTypeRequired, ""}}},
		{name: "ingress bad pathType", obj: with(newIngress(), func(i *networkingv1.Ingress) {
			i.Spec.Rules[0].HTTP.Paths[0].PathType = ptrTo(networkingv1.PathType("Regex"))
		}), namespaced: true, want: []want{{"spec.rules[0].http.paths[0].pathType", field.ErrorTypeNotSupported, ""}}},
		{name: "ingress exact path", obj: with(newIngress(), func(i *networkingv1.Ingress) {
			i.Spec.Rules[0].HTTP.Paths[0].PathType = &exact
			i.Spec.Rules[0].HTTP.Paths[0].Path = "/a//b"
		}), namespaced: true, want: []want{{"spec.rules[0].http.paths[0].path", field.ErrorTypeInvalid, "must not contain '//'"}}},
		{name: "ingress IP host", obj: with(newIngress(), func(i *networkingv1.Ingress) { i.Spec.Rules[0].Host = "10.0.0.1" }), namespaced: true,
			want: []want{{"spec.rules[0].host", field.ErrorTypeInvalid, "not an IP address"}}},
		{name: "ingress wildcard host", obj: with(newIngress(), func(i *networkingv1.Ingress) { i.Spec.Rules[0].Host = "*.example.com" }), namespaced: true},
		{name: "ingress no backend port", obj: with(newIngress(), func(i *networkingv1.Ingress) {
			i.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port = networkingv1.ServiceBackendPort{}
		}), namespaced: true, want: []want{{"spec.rules[0].http.paths[0].backend", field.ErrorTypeRequired, "port name or number is required"}}},
		{name: "ingress no backend service name", obj: with(newIngress(), func(i *networkingv1.Ingress) {
			i.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = ""
		}), namespaced: true, want: []want{{"spec.rules[0].http.paths[0].backend.service.name", field.ErrorTypeRequired, ""}}},
		{name: "ingress empty", obj: &networkingv1.Ingress{ObjectMeta: objMeta("web")}, namespaced: true,
			want: []want{{"spec", field.ErrorTypeInvalid, "either `defaultBackend` or `rules` must be specified"}}},

		{name: "networkpolicy valid", obj: np(), namespaced: true},
		{name: "networkpolicy empty peer", obj: with(np(), func(n *networkingv1.NetworkPolicy) {
			n.Spec.Ingress[0].From = []networkingv1.NetworkPolicyPeer{{}}
		}), namespaced: true, want: []want{{"spec.ingress[0].from[0]", field.ErrorTypeRequired, "must specify a peer"}}},
		{name: "networkpolicy bad protocol", obj: with(np(), func(n *networkingv1.NetworkPolicy) {
			n.Spec.Ingress[0].Ports[0].Protocol = ptrTo(corev1.Protocol("ICMP"))
		}), namespaced: true, want: []want{{"spec.ingress[0].ports[0].protocol", field.ErrorTypeNotSupported, ""}}},
		{name: "networkpolicy ipBlock except", obj: with(np(), func(n *networkingv1.NetworkPolicy) {
			n.Spec.Ingress[0].From = []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/16", Except: []string{"192.168.0.0/24"}}}}
		}), namespaced: true, want: []want{{"spec.ingress[0].from[0].ipBlock.except[0]", field.ErrorTypeInvalid, "strict subset"}}},

		{name: "pdb valid", obj: pdb(), namespaced: true},
		{name: "pdb both", obj: with(pdb(), func(p *policyv1.PodDisruptionBudget) { p.Spec.MaxUnavailable = ptrTo(intstr.FromInt32(1)) }), namespaced: true,
			want: []want{{"spec", field.ErrorTypeInvalid, "minAvailable and maxUnavailable cannot be both set"}}},
		{name: "pdb over 100%", obj: with(pdb(), func(p *policyv1.PodDisruptionBudget) { p.Spec.MinAvailable = ptrTo(intstr.FromString("150%")) }), namespaced: true,
			want: []want{{"spec.minAvailable", field.ErrorTypeInvalid, "100%"}}},

		{name: "hpa valid", obj: newHPA(), namespaced: true},
		{name: "hpa max zero", obj: with(newHPA(), func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MaxReplicas = 0 }), namespaced: true,
			want: []want{{"spec.maxReplicas", field.ErrorTypeInvalid, "must be greater than 0"}}},
		{name: "hpa min above max", obj: with(newHPA(), func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MinReplicas = ptrTo[int32](10) }), namespaced: true,
			want: []want{{"spec.maxReplicas", field.ErrorTypeInvalid, "must be greater than or equal to `minReplicas`"}}},
		{name: "hpa no target", obj: with(newHPA(), func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.ScaleTargetRef = autoscalingv2.CrossVersionObjectReference{}
		}), namespaced: true, want: []want{{"spec.scaleTargetRef.kind", field.ErrorTypeRequired, ""}, {"spec.scaleTargetRef.name", field.ErrorTypeRequired, ""}}},
		{name: "hpa metric without source", obj: with(newHPA(), func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType}}
		}), namespaced: true, want: []want{{"spec.metrics[0].resource", field.ErrorTypeRequired, ""}}},
		{name: "hpa utilization below 1", obj: with(newHPA(), func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: "cpu", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptrTo[int32](0)}}}}
		}), namespaced: true, want: []want{{"spec.metrics[0].resource.target.averageUtilization", field.ErrorTypeInvalid, "must be greater than 0"}}},
		{name: "hpa two sources", obj: with(newHPA(), func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.PodsMetricSourceType,
				Pods: &autoscalingv2.PodsMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "qps"},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptrTo(resource.MustParse("10"))}},
				External: &autoscalingv2.ExternalMetricSource{}}}
		}), namespaced: true, want: []want{{"spec.metrics[0].external", field.ErrorTypeForbidden, "must populate the given metric source only"}}},
		{name: "hpa behavior", obj: with(newHPA(), func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptrTo[int32](60)}}
		}), namespaced: true},

		{name: "role without verbs", obj: &rbacv1.Role{ObjectMeta: objMeta("r"), Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}}}},
			namespaced: true, want: []want{{"rules[0].verbs", field.ErrorTypeRequired, ""}}},
		{name: "role with nonResourceURLs", obj: &rbacv1.Role{ObjectMeta: objMeta("r"), Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/x"}, Verbs: []string{"get"}}}},
			namespaced: true, want: []want{{"rules[0].nonResourceURLs", field.ErrorTypeInvalid, "namespaced rules"}}},
		{name: "rolebinding valid", obj: newRoleBinding(), namespaced: true},
		{name: "rolebinding bad kind", obj: with(newRoleBinding(), func(b *rbacv1.RoleBinding) { b.RoleRef.Kind = "Policy" }), namespaced: true,
			want: []want{{"roleRef.kind", field.ErrorTypeNotSupported, ""}}},
		{name: "rolebinding bad subject", obj: with(newRoleBinding(), func(b *rbacv1.RoleBinding) { b.Subjects[0].Kind = "Robot" }), namespaced: true,
			want: []want{{"subjects[0].kind", field.ErrorTypeNotSupported, ""}}},
		{name: "rolebinding roleRef fixed", obj: with(newRoleBinding(), func(b *rbacv1.RoleBinding) { b.RoleRef.Name = "writer" }), old: newRoleBinding(), namespaced: true,
			want: []want{{"roleRef", field.ErrorTypeInvalid, "cannot change roleRef"}}},

		{name: "lease valid", obj: &coordinationv1.Lease{ObjectMeta: objMeta("leader"), Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: ptrTo[int32](15)}}, namespaced: true},
		{name: "lease zero duration", obj: &coordinationv1.Lease{ObjectMeta: objMeta("leader"), Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: ptrTo[int32](0)}}, namespaced: true,
			want: []want{{"spec.leaseDurationSeconds", field.ErrorTypeInvalid, "must be greater than 0"}}},

		{name: "endpointslice valid", obj: slice(), namespaced: true},
		{name: "endpointslice bad address", obj: with(slice(), func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses[0] = "fe80::1" }), namespaced: true,
			want: []want{{"endpoints[0].addresses[0]", field.ErrorTypeInvalid, ""}}},
		{name: "endpointslice bad type", obj: with(slice(), func(s *discoveryv1.EndpointSlice) { s.AddressType = "IPX" }), namespaced: true,
			want: []want{{"addressType", field.ErrorTypeNotSupported, ""}}},
		{name: "endpointslice loopback address (unprivileged pod IPs)", obj: with(slice(), func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses[0] = "127.66.0.2" }), namespaced: true},
		{name: "endpoints bad ip", obj: &corev1.Endpoints{ObjectMeta: objMeta("web"), Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "169.254.1.1"}}, Ports: []corev1.EndpointPort{{Port: 80}}}}}, namespaced: true,
			want: []want{{"subsets[0].addresses[0].ip", field.ErrorTypeInvalid, "link-local"}}},
		{name: "endpoints loopback ip (unprivileged pod IPs)", obj: &corev1.Endpoints{ObjectMeta: objMeta("web"), Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "127.66.0.2"}}, Ports: []corev1.EndpointPort{{Port: 80}}}}}, namespaced: true},

		{name: "pvc valid", obj: newPVC(), namespaced: true},
		{name: "pvc no storage", obj: with(newPVC(), func(p *corev1.PersistentVolumeClaim) { p.Spec.Resources.Requests = nil }), namespaced: true,
			want: []want{{"spec.resources[storage]", field.ErrorTypeRequired, ""}}},
		{name: "pvc no access modes", obj: with(newPVC(), func(p *corev1.PersistentVolumeClaim) { p.Spec.AccessModes = nil }), namespaced: true,
			want: []want{{"spec.accessModes", field.ErrorTypeRequired, "at least 1 access mode is required"}}},
		{name: "pvc spec fixed", obj: with(newPVC(), func(p *corev1.PersistentVolumeClaim) {
			p.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
		}), old: newPVC(), namespaced: true, want: []want{{"spec", field.ErrorTypeForbidden, "spec is immutable after creation"}}},
		{name: "bound pvc grows", obj: with(newPVC(), func(p *corev1.PersistentVolumeClaim) {
			p.Spec.Resources.Requests["storage"] = resource.MustParse("2Gi")
			p.Status.Phase = corev1.ClaimBound
		}), old: with(newPVC(), func(p *corev1.PersistentVolumeClaim) { p.Status.Phase = corev1.ClaimBound }), namespaced: true},

		{name: "limitrange valid", obj: &corev1.LimitRange{ObjectMeta: objMeta("limits"), Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type: corev1.LimitTypeContainer, Max: corev1.ResourceList{"cpu": resource.MustParse("2")}, Min: corev1.ResourceList{"cpu": resource.MustParse("100m")}}}}},
			namespaced: true},
		{name: "limitrange min above max", obj: &corev1.LimitRange{ObjectMeta: objMeta("limits"), Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type: corev1.LimitTypeContainer, Max: corev1.ResourceList{"cpu": resource.MustParse("1")}, Min: corev1.ResourceList{"cpu": resource.MustParse("2")}}}}},
			noDefault: true, namespaced: true, want: []want{{"spec.limits[0].min[cpu]", field.ErrorTypeInvalid, "min value 2 is greater than max value 1"}}},
		{name: "quota bad scope", obj: &corev1.ResourceQuota{ObjectMeta: objMeta("q"), Spec: corev1.ResourceQuotaSpec{
			Hard: corev1.ResourceList{"pods": resource.MustParse("10")}, Scopes: []corev1.ResourceQuotaScope{"Everything"}}},
			namespaced: true, want: []want{{"spec.scopes[0]", field.ErrorTypeNotSupported, ""}}},
		{name: "event namespace mismatch", obj: &corev1.Event{ObjectMeta: objMeta("web.1"), InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "other", Name: "web"}},
			namespaced: true, want: []want{{"involvedObject.namespace", field.ErrorTypeInvalid, "does not match event.namespace"}}},
	})
}

// servedKinds are the Go types of every resource the registry serves, in a
// stable order.
func servedKinds(tb testing.TB) (*runtime.Scheme, []schema.GroupVersionKind) {
	tb.Helper()
	s, err := resources.NewScheme()
	if err != nil {
		tb.Fatal(err)
	}
	r, err := resources.New(s)
	if err != nil {
		tb.Fatal(err)
	}
	var gvks []schema.GroupVersionKind
	for _, res := range r.All() {
		gvks = append(gvks, res.GVK())
	}
	return s, gvks
}

// checkNoPanic decodes data into a new object of kind gvk and runs the
// whole pipeline on it, calling the unexported functions directly (without
// the recover of the exported ones) so that the fuzzer sees any panic. Data
// that is not JSON for the kind drives a random filler instead, so every
// input reaches the validators.
func checkNoPanic(t *testing.T, s *runtime.Scheme, gvk schema.GroupVersionKind, data []byte) {
	obj, err := s.New(gvk)
	if err != nil {
		t.Fatal(err)
	}
	if json.Unmarshal(data, obj) != nil {
		obj, _ = s.New(gvk)
		(&filler{data: data}).fill(reflect.ValueOf(obj).Elem(), 0)
	}
	raw := obj.DeepCopyObject()
	defaultObject(obj)
	// Defaulting must be idempotent: the server defaults on every write.
	again := obj.DeepCopyObject()
	defaultObject(again)
	if !semanticEqual(obj, again) {
		t.Fatalf("%s: Default not idempotent (%v) for %q", gvk.Kind, diffFields(obj, again), data)
	}
	for _, namespaced := range []bool{true, false} {
		for _, errs := range []field.ErrorList{
			ValidateCreate(obj, namespaced),
			ValidateCreate(raw, namespaced),
			ValidateUpdate(obj, obj, namespaced),
			ValidateUpdate(obj, raw, namespaced),
			ValidateUpdate(raw, obj, namespaced),
		} {
			for _, e := range errs {
				if e.Type == field.ErrorTypeInternal && strings.Contains(e.Detail, panicMarker) {
					t.Fatalf("%s: %s\ninput: %q", gvk.Kind, e.Detail, data)
				}
				_ = e.Error() // rendering must not panic either
			}
		}
	}
	_ = validateObject(obj, nil)
	_ = validateObject(obj, raw)
	_ = validateObject(raw, obj)
}

// filler fills a Go value from fuzz bytes: pointers set or nil, short
// slices and maps, and strings and numbers drawn mostly from values the
// validators branch on.
type filler struct {
	data []byte
	pos  int
}

func (f *filler) next() byte {
	if f.pos >= len(f.data) {
		return 0
	}
	b := f.data[f.pos]
	f.pos++
	return b
}

var (
	fuzzStrings = []string{"", "a", "web", "Bad_Name", "default", "None", "Always", "Never", "OnFailure", "IfNotPresent",
		"TCP", "UDP", "ICMP", "nginx", "nginx:1.27", "ClusterIP", "NodePort", "LoadBalancer", "ExternalName",
		"RollingUpdate", "Recreate", "OnDelete", "Parallel", "Indexed", "25%", "150%", "x%", "-1", "..", "/", "/a/../b",
		"metadata.name", "metadata.labels['a']", "v1", "storage", "cpu", "memory", "example.com/gpu", "hugepages-2Mi",
		"10.0.0.1", "::1", "10.0.0.0/8", "*.example.com", "Prefix", "Exact", "Role", "ClusterRole", "User",
		"ServiceAccount", "rbac.authorization.k8s.io", "Resource", "Utilization", "Pods", "IPv4", "IPv6",
		"SingleStack", "kubernetes.io/tls", "kubernetes.io/dockerconfigjson", "tls.crt", "*/5 * * * *", "@every 1x",
		"TZ=UTC * * * * *", "Europe/Paris", "Local", "Exists", "Equal", "NoExecute", "Ready", "\x00\xff", "a=b"}
	fuzzInts       = []int64{0, 1, -1, 2, 10, 80, 600, 30000, 32768, 65535, 65536, math.MaxInt32, math.MinInt32, math.MaxInt64}
	fuzzQuantities = []string{"0", "1", "-1", "500m", "1Gi", "2", "0.0001", "1e3", "100Ki"}
)

func (f *filler) fill(v reflect.Value, depth int) {
	if !v.CanSet() || depth > 12 {
		return
	}
	switch v.Interface().(type) {
	case resource.Quantity:
		v.Set(reflect.ValueOf(resource.MustParse(fuzzQuantities[int(f.next())%len(fuzzQuantities)])))
		return
	case intstr.IntOrString:
		// Type may be out of range on purpose: a decoder could produce it.
		v.Set(reflect.ValueOf(intstr.IntOrString{Type: intstr.Type(f.next() % 3),
			IntVal: int32(fuzzInts[int(f.next())%len(fuzzInts)]), StrVal: fuzzStrings[int(f.next())%len(fuzzStrings)]}))
		return
	case metav1.Time, metav1.MicroTime:
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if f.next()%3 != 0 {
			v.Set(reflect.New(v.Type().Elem()))
			f.fill(v.Elem(), depth+1)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				f.fill(v.Field(i), depth+1)
			}
		}
	case reflect.Slice:
		if n := int(f.next() % 4); n > 0 {
			v.Set(reflect.MakeSlice(v.Type(), n, n))
			for i := 0; i < n; i++ {
				f.fill(v.Index(i), depth+1)
			}
		}
	case reflect.Map:
		if n := int(f.next() % 4); n > 0 {
			v.Set(reflect.MakeMap(v.Type()))
			for i := 0; i < n; i++ {
				k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
				f.fill(k, depth+1)
				f.fill(e, depth+1)
				v.SetMapIndex(k, e)
			}
		}
	case reflect.String:
		if b := f.next(); b < 200 {
			v.SetString(fuzzStrings[int(b)%len(fuzzStrings)])
		} else {
			n := int(b - 200)
			end := min(f.pos+n, len(f.data))
			v.SetString(string(f.data[f.pos:end]))
			f.pos = end
		}
	case reflect.Bool:
		v.SetBool(f.next()&1 == 1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := fuzzInts[int(f.next())%len(fuzzInts)]
		if !v.OverflowInt(n) {
			v.SetInt(n)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(f.next()))
	}
}

// seedManifests are realistic manifests for the fuzz corpus; each is tried
// against every kind.
var seedManifests = []string{
	`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default","labels":{"app":"web"}},
	  "spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":"50%"}},
	  "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"nginx","image":"nginx:1.27",
	  "ports":[{"containerPort":80,"name":"http"}],"env":[{"name":"POD","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],
	  "resources":{"limits":{"cpu":"500m","memory":"128Mi"},"requests":{"cpu":"250m"}},
	  "livenessProbe":{"httpGet":{"path":"/healthz","port":"http"}},"volumeMounts":[{"name":"cfg","mountPath":"/etc/nginx/conf.d"}]}],
	  "volumes":[{"name":"cfg","configMap":{"name":"nginx"}}]}}}}`,
	`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"busybox","namespace":"default"},"spec":{"restartPolicy":"Never",
	  "initContainers":[{"name":"init","image":"busybox","command":["sh","-c","true"]},{"name":"sidecar","image":"envoy","restartPolicy":"Always"}],
	  "containers":[{"name":"main","image":"busybox@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","command":["sleep","3600"],
	  "securityContext":{"runAsUser":1000,"privileged":false}}],"tolerations":[{"key":"k","operator":"Exists","effect":"NoExecute","tolerationSeconds":30}],
	  "volumes":[{"name":"empty"},{"name":"tok","projected":{"sources":[{"serviceAccountToken":{"path":"token"}}]}}],"hostNetwork":true}}`,
	`{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"},"spec":{"type":"NodePort","selector":{"app":"web"},
	  "ports":[{"name":"http","port":80,"targetPort":"http","nodePort":30080},{"name":"https","port":443,"protocol":"TCP"}],
	  "clusterIP":"10.96.0.5","clusterIPs":["10.96.0.5"],"sessionAffinity":"ClientIP"}}`,
	`{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"hello","namespace":"default"},"spec":{"schedule":"*/1 * * * *",
	  "timeZone":"Etc/UTC","jobTemplate":{"spec":{"completionMode":"Indexed","completions":3,"backoffLimitPerIndex":1,"template":{"spec":
	  {"restartPolicy":"OnFailure","containers":[{"name":"hello","image":"busybox","args":["date"]}]}}}}}}`,
	`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"tls","namespace":"default"},"type":"kubernetes.io/tls",
	  "data":{"tls.crt":"Y2VydA==","tls.key":"a2V5"},"stringData":{"extra":"x"},"immutable":true}`,
	`{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"web","namespace":"default"},"spec":{"ingressClassName":"nginx",
	  "tls":[{"hosts":["*.example.com"],"secretName":"tls"}],"rules":[{"host":"www.example.com","http":{"paths":[{"path":"/","pathType":"Prefix",
	  "backend":{"service":{"name":"web","port":{"name":"http"}}}}]}}]}}`,
	`{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db","namespace":"default"},"spec":{"serviceName":"db",
	  "selector":{"matchExpressions":[{"key":"app","operator":"In","values":["db"]}]},"template":{"metadata":{"labels":{"app":"db"}},
	  "spec":{"containers":[{"name":"pg","image":"postgres:17","volumeMounts":[{"name":"data","mountPath":"/var/lib/postgresql"}]}]}},
	  "volumeClaimTemplates":[{"metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}]}}`,
	`{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","metadata":{"name":"web","namespace":"default"},"spec":{
	  "scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},"minReplicas":2,"maxReplicas":10,
	  "metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":70}}}],
	  "behavior":{"scaleUp":{"policies":[{"type":"Pods","value":2,"periodSeconds":30}]}}}}`,
	`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"read","namespace":"default"},
	  "roleRef":{"kind":"ClusterRole","name":"view"},"subjects":[{"kind":"Group","name":"devs"},{"kind":"ServiceAccount","name":"ci"}],
	  "rules":[{"verbs":["get"],"apiGroups":[""],"resources":["pods"]}]}`,
	`{"metadata":{"name":"x"},"spec":{"containers":null,"template":null,"selector":{},"ports":[{}],"rules":[{}],"subsets":[{}],
	  "volumes":[{}],"strategy":{"type":"RollingUpdate","rollingUpdate":{}}},"status":{}}`,
	`{}`,
}

func TestAllSchemeKindsSurviveSeeds(t *testing.T) {
	s, err := resources.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	var gvks []schema.GroupVersionKind
	for gvk := range s.AllKnownTypes() {
		gvks = append(gvks, gvk)
	}
	sort.Slice(gvks, func(i, j int) bool { return gvks[i].String() < gvks[j].String() })
	rng := rand.New(rand.NewPCG(1, 2))
	for _, gvk := range gvks {
		for _, m := range seedManifests {
			checkNoPanic(t, s, gvk, []byte(m))
		}
		// Not JSON, so these drive the random filler.
		for range 20 {
			buf := make([]byte, 512)
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
			checkNoPanic(t, s, gvk, buf)
		}
	}
}

// FuzzValidate decodes arbitrary JSON into each served kind (chosen by the
// first byte) and runs Default, ValidateCreate and ValidateUpdate on it; none
// may panic, and defaulting must be idempotent.
func FuzzValidate(f *testing.F) {
	s, gvks := servedKinds(f)
	for i := range gvks {
		for _, m := range seedManifests {
			f.Add(append([]byte{byte(i)}, m...))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		gvk := gvks[int(data[0])%len(gvks)]
		// A hang is a bug too (the server would stall on the request); the
		// fuzzer only records inputs that crash, so crash.
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				panic(fmt.Sprintf("%s: input took over 10s: %q", gvk.Kind, data[1:]))
			}
		}()
		checkNoPanic(t, s, gvk, data[1:])
	})
}
