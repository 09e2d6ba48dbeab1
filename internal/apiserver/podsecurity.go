package apiserver

import (
	"context"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/warning"
	psadmission "k8s.io/pod-security-admission/admission"
	psconfig "k8s.io/pod-security-admission/admission/api/load"
	psapi "k8s.io/pod-security-admission/api"
	psmetrics "k8s.io/pod-security-admission/metrics"
	"k8s.io/pod-security-admission/policy"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// newPodSecurity builds Kubernetes' PodSecurity admission (the
// k8s.io/pod-security-admission library that kube-apiserver's plugin
// wraps) with Kubernetes' default configuration: every level privileged
// unless the namespace's pod-security.kubernetes.io/ labels say otherwise,
// and no exemptions (kube-system included: Kubernetes exempts nothing by
// default).
func (s *Server) newPodSecurity() (*psadmission.Admission, error) {
	cfg, err := psconfig.LoadFromData(nil)
	if err != nil {
		return nil, fmt.Errorf("pod security defaults: %w", err)
	}
	ev, err := policy.NewEvaluator(policy.DefaultChecks())
	if err != nil {
		return nil, fmt.Errorf("pod security checks: %w", err)
	}
	a := &psadmission.Admission{Configuration: cfg, Evaluator: ev, Metrics: noPodSecurityMetrics{},
		PodSpecExtractor: psadmission.DefaultPodSpecExtractor{}, NamespaceGetter: podSecurityStore{s}, PodLister: podSecurityStore{s}}
	if err := a.CompleteConfiguration(); err != nil {
		return nil, fmt.Errorf("pod security: %w", err)
	}
	if err := a.ValidateConfiguration(); err != nil {
		return nil, fmt.Errorf("pod security: %w", err)
	}
	return a, nil
}

// admitPodSecurity runs PodSecurity on a create (old nil) or update of
// obj: pods are refused by the namespace's enforce level ("violates
// PodSecurity ..."), pods and workload templates get Warning headers for
// the warn level and audit annotations for the audit level, namespaces'
// labels are validated, and raising a namespace's enforce level warns
// about its pods that would be refused.
func (s *Server) admitPodSecurity(ctx context.Context, res *resources.Resource, sub string, obj, old runtime.Object) error {
	gr := res.GroupResource()
	if s.podSecurity == nil || !(gr == (schema.GroupResource{Resource: "namespaces"}) || psadmission.DefaultPodSpecExtractor{}.HasPodSpec(gr)) {
		return nil
	}
	m := mustMeta(obj)
	attrs := &psapi.AttributesRecord{Name: m.GetName(), Namespace: m.GetNamespace(), Kind: res.GVK(),
		Resource: res.GVK().GroupVersion().WithResource(res.Resource), Subresource: sub,
		Operation: admissionv1.Create, Object: obj, OldObject: old}
	if gr.Resource == "namespaces" {
		attrs.Namespace = m.GetName() // the namespace a namespace request is about is itself
	}
	if old != nil {
		attrs.Operation = admissionv1.Update
	}
	if u, ok := UserFrom(ctx); ok {
		attrs.Username = u.GetName()
	}
	resp := s.podSecurity.Validate(ctx, attrs)
	for k, v := range resp.AuditAnnotations {
		AddAuditAnnotation(ctx, psapi.AuditAnnotationPrefix+k, v)
	}
	for _, w := range resp.Warnings {
		warning.AddWarning(ctx, "", w)
	}
	if resp.Allowed {
		return nil
	}
	if resp.Result == nil {
		return apierrors.NewForbidden(gr, m.GetName(), fmt.Errorf("refused by PodSecurity"))
	}
	return &apierrors.StatusError{ErrStatus: *resp.Result}
}

// podSecurityStore reads namespaces and pods for PodSecurity from the store.
type podSecurityStore struct{ s *Server }

func (p podSecurityStore) GetNamespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	res, _ := p.s.reg.Get(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	obj, err := p.s.objs.get(ctx, res, "", name)
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.Namespace), nil
}

func (p podSecurityStore) ListPods(ctx context.Context, ns string) ([]*corev1.Pod, error) {
	res, _ := p.s.reg.Get(schema.GroupVersionResource{Version: "v1", Resource: "pods"})
	objs, err := p.s.objs.list(ctx, res, ns)
	if err != nil {
		return nil, err
	}
	pods := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if pod, ok := o.(*corev1.Pod); ok {
			pods = append(pods, pod)
		}
	}
	return pods, nil
}

// noPodSecurityMetrics drops PodSecurity's metrics: they are
// component-base metrics, which skiff's Prometheus registry does not
// carry.
type noPodSecurityMetrics struct{}

func (noPodSecurityMetrics) RecordEvaluation(psmetrics.Decision, psapi.LevelVersion, psmetrics.Mode, psapi.Attributes) {
}
func (noPodSecurityMetrics) RecordExemption(psapi.Attributes)   {}
func (noPodSecurityMetrics) RecordError(bool, psapi.Attributes) {}
