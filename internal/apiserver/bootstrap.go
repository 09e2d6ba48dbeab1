package apiserver

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
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
	if err := s.ensureStorageClass(ctx); err != nil {
		return err
	}
	if err := s.ensureKubernetesService(ctx); err != nil {
		return err
	}
	return s.ensureDNSService(ctx)
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
	return s.finalizeOldNamespaces(ctx, nsRes)
}

// finalizeOldNamespaces gives the "kubernetes" finalizer to namespaces
// created before namespaces carried it: without it their DELETE would drop
// them at once and leave their objects behind, unreachable. A namespace
// already being deleted is left as it is; a conflict means another server
// (or a client) wrote it meanwhile, and the next start looks again.
func (s *Server) finalizeOldNamespaces(ctx context.Context, nsRes *resources.Resource) error {
	all, err := s.objs.list(ctx, nsRes, "")
	if err != nil {
		return err
	}
	for _, obj := range all {
		ns := obj.(*corev1.Namespace)
		if ns.DeletionTimestamp != nil || slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
			continue
		}
		rev, err := strconv.ParseInt(ns.ResourceVersion, 10, 64)
		if err != nil {
			return fmt.Errorf("namespace %s: resourceVersion %q: %w", ns.Name, ns.ResourceVersion, err)
		}
		ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
		if _, err := s.objs.update(ctx, nsRes, "", ns.Name, ns, rev); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("namespace %s: add the kubernetes finalizer: %w", ns.Name, err)
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

// The kube-dns Service: every node's cluster DNS server (internal/clusterdns)
// listens on its ClusterIP, and pods' resolv.conf names it. It has no
// selector (nothing is behind it but the node's own server) and keeps
// Kubernetes' name and label, which tools look for.
const (
	DNSServiceNamespace = metav1.NamespaceSystem
	DNSServiceName      = "kube-dns"
)

// ensureDNSService creates the kube-dns Service in kube-system, with the
// service CIDR's tenth address (servicealloc.DNSIP) and ports dns/53/UDP and
// dns-tcp/53/TCP, as a kubeadm cluster has it. A CIDR too small for it, or
// an address some Service already holds (a cluster made before there was
// cluster DNS), is logged and leaves the cluster without it: the API serves
// all the same.
func (s *Server) ensureDNSService(ctx context.Context) error {
	ip, ok := s.services.DNSIP()
	if !ok {
		s.log.Warn("no kube-dns Service: the service CIDR is too small for its address (the tenth)", "service_cidr", s.cfg.ServiceCIDR)
		return nil
	}
	svc := &corev1.Service{
		TypeMeta: metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: DNSServiceName, Namespace: DNSServiceNamespace,
			Labels: map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", "kubernetes.io/cluster-service": "true"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: ip.String(),
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
			}},
	}
	res, _ := s.reg.ForKind(corev1.SchemeGroupVersion.WithKind("Service"))
	if _, err := s.objs.get(ctx, res, svc.Namespace, svc.Name); !apierrors.IsNotFound(err) {
		return err
	}
	_, err := s.createObject(ctx, res, svc, nil, "")
	switch {
	case err == nil, apierrors.IsAlreadyExists(err):
		return nil
	case apierrors.IsInvalid(err):
		s.log.Warn("no kube-dns Service: its address is taken", "address", ip, "err", err)
		return nil
	}
	return fmt.Errorf("create the kube-dns Service: %w", err)
}
