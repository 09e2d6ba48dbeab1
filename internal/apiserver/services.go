package apiserver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiffhq/skiff/raft"
)

// Services get their ClusterIP from the service CIDR and their NodePorts
// from this range, as Kubernetes allocates them in the API server. Each
// allocation is a store key created with create-if-absent, so two Services
// created at once never get the same address, on any server.
const (
	nodePortMin = 30000
	nodePortMax = 32767

	allocPrefix = "/registry/allocations/"
)

func clusterIPKey(ip netip.Addr) string { return allocPrefix + "clusterip/" + ip.String() }
func nodePortKey(p int32) string        { return allocPrefix + "nodeport/" + strconv.Itoa(int(p)) }

// allocateService fills and reserves a new Service's ClusterIP and
// NodePorts. On error nothing stays reserved.
func (s *Server) allocateService(ctx context.Context, svc *corev1.Service) (release func(), err error) {
	var keys []string
	release = func() {
		for _, k := range keys {
			s.cfg.Store.Delete(context.WithoutCancel(ctx), k, 0)
		}
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	owner := []byte(svc.Namespace + "/" + svc.Name)
	reserve := func(key string) error {
		_, err := s.cfg.Store.Create(ctx, key, owner)
		if err == nil {
			keys = append(keys, key)
		}
		return err
	}
	if svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		if svc.Spec.ClusterIP == "" {
			ip, err := s.pickClusterIP(ctx, reserve)
			if err != nil {
				return release, err
			}
			svc.Spec.ClusterIP = ip.String()
		} else {
			ip, perr := netip.ParseAddr(svc.Spec.ClusterIP)
			if perr != nil || !s.serviceCIDR.Contains(ip) {
				return release, invalidService(svc, field.Invalid(field.NewPath("spec", "clusterIP"), svc.Spec.ClusterIP,
					fmt.Sprintf("the provided IP is not in the valid range: the service CIDR is %s", s.serviceCIDR)))
			}
			if err := reserve(clusterIPKey(ip)); errors.Is(err, raft.ErrKeyExists) {
				return release, invalidService(svc, field.Invalid(field.NewPath("spec", "clusterIP"), svc.Spec.ClusterIP,
					"provided IP is already allocated"))
			} else if err != nil {
				return release, err
			}
		}
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	}
	return release, s.allocateNodePorts(ctx, svc, reserve)
}

func (s *Server) allocateNodePorts(ctx context.Context, svc *corev1.Service, reserve func(string) error) error {
	if svc.Spec.Type != corev1.ServiceTypeNodePort && svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return nil
	}
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if p.NodePort != 0 {
			if p.NodePort < nodePortMin || p.NodePort > nodePortMax {
				return invalidService(svc, field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort,
					fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", nodePortMin, nodePortMax)))
			}
			if err := reserve(nodePortKey(p.NodePort)); errors.Is(err, raft.ErrKeyExists) {
				return invalidService(svc, field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort,
					"provided port is already allocated"))
			} else if err != nil {
				return err
			}
			continue
		}
		start := nodePortMin + rand.IntN(nodePortMax-nodePortMin+1)
		for n := 0; n <= nodePortMax-nodePortMin; n++ {
			port := int32(nodePortMin + (start-nodePortMin+n)%(nodePortMax-nodePortMin+1))
			err := reserve(nodePortKey(port))
			if err == nil {
				p.NodePort = port
				break
			}
			if !errors.Is(err, raft.ErrKeyExists) {
				return err
			}
		}
		if p.NodePort == 0 {
			return apierrors.NewInternalError(errors.New("no free NodePort left"))
		}
	}
	return nil
}

// pickClusterIP reserves a free address, starting at a random one as
// Kubernetes does (so addresses of deleted Services are not reused at once).
// The network address and the first one (the kubernetes Service's) are
// never handed out.
func (s *Server) pickClusterIP(ctx context.Context, reserve func(string) error) (netip.Addr, error) {
	bits := s.serviceCIDR.Addr().BitLen() - s.serviceCIDR.Bits()
	size := uint64(1) << min(bits, 20) // enough to find a free one; bounds the loop
	if size < 4 {
		return netip.Addr{}, apierrors.NewInternalError(fmt.Errorf("service CIDR %s is too small", s.serviceCIDR))
	}
	start := 2 + rand.Uint64N(size-3)
	for n := uint64(0); n < size-2; n++ {
		ip := nthAddr(s.serviceCIDR, 2+(start-2+n)%(size-3))
		err := reserve(clusterIPKey(ip))
		if err == nil {
			return ip, nil
		}
		if !errors.Is(err, raft.ErrKeyExists) {
			return netip.Addr{}, err
		}
	}
	return netip.Addr{}, apierrors.NewInternalError(fmt.Errorf("service CIDR %s is full", s.serviceCIDR))
}

// nthAddr is the n-th address of prefix p.
func nthAddr(p netip.Prefix, n uint64) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := len(b) - 1; i >= 0 && n > 0; i-- {
		sum := uint64(b[i]) + n&0xff
		b[i] = byte(sum)
		n = n>>8 + sum>>8
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// releaseFreedPorts frees the NodePorts an update took away from a Service.
func (s *Server) releaseFreedPorts(ctx context.Context, cur, updated runtime.Object) {
	c, ok1 := cur.(*corev1.Service)
	u, ok2 := updated.(*corev1.Service)
	if !ok1 || !ok2 {
		return
	}
	kept := map[int32]bool{}
	for _, p := range u.Spec.Ports {
		kept[p.NodePort] = true
	}
	for _, p := range c.Spec.Ports {
		if p.NodePort != 0 && !kept[p.NodePort] {
			s.cfg.Store.Delete(context.WithoutCancel(ctx), nodePortKey(p.NodePort), 0)
		}
	}
}

// releaseService frees the addresses of a deleted Service.
func (s *Server) releaseService(ctx context.Context, obj runtime.Object) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if ip, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil {
		s.cfg.Store.Delete(ctx, clusterIPKey(ip), 0)
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			s.cfg.Store.Delete(ctx, nodePortKey(p.NodePort), 0)
		}
	}
}

func needsNodePorts(t corev1.ServiceType) bool {
	return t == corev1.ServiceTypeNodePort || t == corev1.ServiceTypeLoadBalancer
}

// fillServiceUpdate keeps the allocated ClusterIP when an update leaves it
// empty (as kubectl replace of a manifest does), drops the fields the new
// type does not have when the type changes (unless the client changed them,
// as Kubernetes does), and gives new NodePorts to ports that need one.
func (s *Server) fillServiceUpdate(ctx context.Context, cur, next runtime.Object) error {
	c, ok1 := cur.(*corev1.Service)
	n, ok2 := next.(*corev1.Service)
	if !ok1 || !ok2 {
		return nil
	}
	if n.Spec.ClusterIP == "" && n.Spec.Type != corev1.ServiceTypeExternalName {
		n.Spec.ClusterIP, n.Spec.ClusterIPs = c.Spec.ClusterIP, c.Spec.ClusterIPs
	}
	if needsNodePorts(c.Spec.Type) && !needsNodePorts(n.Spec.Type) {
		for i := range n.Spec.Ports {
			if i < len(c.Spec.Ports) && n.Spec.Ports[i].NodePort == c.Spec.Ports[i].NodePort {
				n.Spec.Ports[i].NodePort = 0
			}
		}
		if n.Spec.ExternalTrafficPolicy == c.Spec.ExternalTrafficPolicy {
			n.Spec.ExternalTrafficPolicy = ""
		}
		if n.Spec.HealthCheckNodePort == c.Spec.HealthCheckNodePort {
			n.Spec.HealthCheckNodePort = 0
		}
	}
	if c.Spec.Type == corev1.ServiceTypeLoadBalancer && n.Spec.Type != corev1.ServiceTypeLoadBalancer &&
		reflect.DeepEqual(n.Spec.AllocateLoadBalancerNodePorts, c.Spec.AllocateLoadBalancerNodePorts) {
		n.Spec.AllocateLoadBalancerNodePorts = nil
	}
	if !needsNodePorts(n.Spec.Type) {
		return nil
	}
	old := map[string]int32{}
	for _, p := range c.Spec.Ports {
		old[p.Name+"/"+string(p.Protocol)+"/"+strconv.Itoa(int(p.Port))] = p.NodePort
	}
	for i := range n.Spec.Ports {
		p := &n.Spec.Ports[i]
		if np := old[p.Name+"/"+string(p.Protocol)+"/"+strconv.Itoa(int(p.Port))]; p.NodePort == 0 && np != 0 {
			p.NodePort = np
		}
	}
	owner := []byte(n.Namespace + "/" + n.Name)
	return s.allocateNodePorts(ctx, &corev1.Service{ObjectMeta: n.ObjectMeta, Spec: corev1.ServiceSpec{Type: n.Spec.Type,
		Ports: n.Spec.Ports}}, func(key string) error {
		// Ports the Service already holds are its own: keep them.
		if kv, _, err := s.cfg.Store.Get(ctx, key, raft.ReadOptions{}); err == nil && string(kv.Value) == string(owner) {
			return nil
		}
		_, err := s.cfg.Store.Create(ctx, key, owner)
		return err
	})
}

func invalidService(svc *corev1.Service, errs ...*field.Error) error {
	return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), svc.Name, errs)
}
