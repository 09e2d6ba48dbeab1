package apiserver

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// policyAdmission is ValidatingAdmissionPolicy: k8s.io/apiserver's own
// validating plugin (the one kube-apiserver runs), fed by informers of
// this server's API over the in-process transport. The plugin keeps the
// policies, bindings and params in its caches and compiles a policy once
// per resourceVersion, so a request costs no store read for them.
type policyAdmission struct {
	plugin *validating.Plugin
	objs   admission.ObjectInterfaces
	// bindings is the plugin's own binding informer (the factory shares
	// it): with none bound, a request skips the plugin and its copies.
	bindings cache.SharedIndexInformer
}

// startAdmissionPolicies builds the plugin and starts its informers; they
// stop with the server's background context. Requests wait (up to the
// plugin's ten seconds) for its first lists.
func (s *Server) startAdmissionPolicies() error {
	cfg := &rest.Config{Host: "http://skiff.in-process", Transport: s.InProcessTransport(),
		UserAgent: "skiff-admission-policy", QPS: -1}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("admission policy client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("admission policy dynamic client: %w", err)
	}
	f := informers.NewSharedInformerFactory(cs, 0)
	// A paramKind resolves through discovery; the deferred mapper
	// re-reads it on a miss, so a CRD installed later is found.
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery()))
	bindings := f.Admissionregistration().V1().ValidatingAdmissionPolicyBindings().Informer()
	p := validating.NewPlugin(nil)
	p.SetExternalKubeInformerFactory(f)
	p.SetExternalKubeClientSet(cs)
	p.SetDynamicClient(dyn)
	p.SetRESTMapper(mapper)
	p.SetDrainedNotification(s.bg.Done())
	p.SetAuthorizer(serverAuthorizer{s})
	if err := p.ValidateInitialization(); err != nil {
		return fmt.Errorf("admission policy plugin: %w", err)
	}
	f.Start(s.bg.Done())
	s.mu.Lock()
	s.policies = &policyAdmission{plugin: p, objs: admission.NewObjectInterfacesFromScheme(s.scheme), bindings: bindings}
	s.mu.Unlock()
	return nil
}

// admitPolicies runs the ValidatingAdmissionPolicies bound to a request:
// obj is the new object (nil on delete), old the current one (nil on
// create). It runs after every mutation and validation, as Kubernetes'
// validating admission does. Deny is the plugin's 422 (or the policy's
// reason), Warn a Warning header, Audit an audit annotation.
func (s *Server) admitPolicies(ctx context.Context, res *resources.Resource, sub string, op admission.Operation, obj, old runtime.Object, options runtime.Object, dry bool) error {
	s.mu.Lock()
	pa := s.policies
	s.mu.Unlock()
	if pa == nil || (pa.bindings.HasSynced() && len(pa.bindings.GetStore().ListKeys()) == 0) {
		return nil
	}
	var m metav1.Object
	if obj != nil {
		m = mustMeta(obj)
	} else {
		m = mustMeta(old)
	}
	ns := m.GetNamespace()
	switch {
	case res.GroupResource() == (schema.GroupResource{Resource: "namespaces"}):
		ns = m.GetName() // a namespace's request is in itself, as Kubernetes' request info says
	case !res.Namespaced:
		ns = ""
	}
	var u user.Info = &user.DefaultInfo{Name: user.Anonymous}
	if ui, ok := UserFrom(ctx); ok {
		u = ui
	}
	gvk := res.GVK()
	if sub != "" {
		if sr := res.Sub(sub); sr != nil && sr.Kind != "" {
			gvk = res.GVK().GroupVersion().WithKind(sr.Kind)
			if sr.Group != "" || sr.Version != "" {
				gvk.Group, gvk.Version = sr.Group, sr.Version
			}
		}
	}
	// The plugin reads an object's kind (CEL's object.kind, conversions):
	// typed objects leave the store without TypeMeta.
	obj, old = withKind(obj, gvk), withKind(old, gvk)
	attrs := auditingAttributes{Attributes: admission.NewAttributesRecord(obj, old, gvk, ns, m.GetName(),
		res.GVR(), sub, op, options, dry, u), ctx: ctx}
	err := pa.plugin.Validate(ctx, attrs, pa.objs)
	if err == nil {
		return nil
	}
	if _, ok := err.(apierrors.APIStatus); ok {
		return err
	}
	return apierrors.NewInternalError(fmt.Errorf("admission policies: %w", err))
}

// admitPolicyUpdate is admitPolicies for an update: a /scale request's
// policies see autoscaling/v1 Scales, as in Kubernetes, not the objects
// they scale.
func (s *Server) admitPolicyUpdate(ctx context.Context, req request, next, cur runtime.Object, dry bool) error {
	if req.sub == "scale" {
		var err error
		if next, err = s.subresourceView(next, req); err != nil {
			return err
		}
		if cur, err = s.subresourceView(cur, req); err != nil {
			return err
		}
	}
	return s.admitPolicies(ctx, req.res, req.sub, admission.Update, next, cur, &metav1.UpdateOptions{}, dry)
}

// withKind returns obj with its TypeMeta set to gvk (a copy when it was
// unset, so the caller's object is not changed).
func withKind(obj runtime.Object, gvk schema.GroupVersionKind) runtime.Object {
	if obj == nil || !obj.GetObjectKind().GroupVersionKind().Empty() {
		return obj
	}
	c := obj.DeepCopyObject()
	c.GetObjectKind().SetGroupVersionKind(gvk)
	return c
}

// auditingAttributes sends the plugin's audit annotations (Audit
// actions' validation_failure, a policy's auditAnnotations) to this
// server's audit log.
type auditingAttributes struct {
	admission.Attributes
	ctx context.Context
}

func (a auditingAttributes) AddAnnotation(key, value string) error {
	AddAuditAnnotation(a.ctx, key, value)
	return a.Attributes.AddAnnotation(key, value)
}

// serverAuthorizer is this server's authorizer chain for CEL's
// authorizer variable.
type serverAuthorizer struct{ s *Server }

func (z serverAuthorizer) Authorize(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	ok, reason, err := z.s.decide(ctx, a)
	if ok {
		return authorizer.DecisionAllow, reason, err
	}
	return authorizer.DecisionNoOpinion, reason, err
}
