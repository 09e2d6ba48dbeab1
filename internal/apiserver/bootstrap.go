package apiserver

import (
	"context"

	skiffrt "github.com/skiffhq/skiff/runtime"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ensureDefaults creates the objects every cluster has. Start runs it on
// every start of every server: each step creates only what is missing and
// takes AlreadyExists as done, so restarts and servers starting together
// agree.
func (s *Server) ensureDefaults(ctx context.Context) error {
	if err := s.ensureNamespaces(ctx); err != nil {
		return err
	}
	if err := s.ensureRuntimeClass(ctx); err != nil {
		return err
	}
	return s.ensureKubernetesService(ctx)
}

// ensureRuntimeClass creates the RuntimeClass "wasm" (handler wasm), which
// selects the Wasm runtime for a pod (runtimeClassName: wasm). It carries
// the node selector of the nodes that offer the runtime, so the scheduler
// places such pods on them, as RuntimeClass scheduling does.
func (s *Server) ensureRuntimeClass(ctx context.Context) error {
	res, _ := s.reg.Get(schema.GroupVersionResource{Group: "node.k8s.io", Version: "v1", Resource: "runtimeclasses"})
	if _, err := s.objs.get(ctx, res, "", "wasm"); err == nil {
		return nil
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "wasm"}, Handler: "wasm",
		Scheduling: &nodev1.Scheduling{NodeSelector: map[string]string{skiffrt.NodeLabel("wasm"): skiffrt.NodeLabelValue}}}
	rc.SetGroupVersionKind(res.GVK())
	if _, err := s.createObject(ctx, res, rc, nil, ""); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// ensureNamespaces creates the namespaces every cluster has.
func (s *Server) ensureNamespaces(ctx context.Context) error {
	nsRes, _ := s.reg.Get(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	for _, name := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		if _, err := s.objs.get(ctx, nsRes, "", name); err == nil {
			continue
		} else if !apierrors.IsNotFound(err) {
			return err
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{corev1.LabelMetadataName: name}}}
		ns.SetGroupVersionKind(nsRes.GVK())
		if _, err := s.createObject(ctx, nsRes, ns, nil, ""); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

// ensureKubernetesService creates the "kubernetes" Service in default, the
// in-cluster address of the API, with the first address of the CIDR.
func (s *Server) ensureKubernetesService(ctx context.Context) error {
	svc := &corev1.Service{
		TypeMeta: metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: s.services.KubernetesIP().String(),
			Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(6443)}}},
	}
	res, _ := s.reg.ForKind(corev1.SchemeGroupVersion.WithKind("Service"))
	if _, err := s.objs.get(ctx, res, svc.Namespace, svc.Name); !apierrors.IsNotFound(err) {
		return err
	}
	_, err := s.createObject(ctx, res, svc, nil, "")
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
