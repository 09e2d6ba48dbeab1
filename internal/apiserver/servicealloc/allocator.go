// Package servicealloc hands out Service ClusterIPs and NodePorts, as the
// Kubernetes API server's IP and port allocators do, so that two Services
// created at once on different servers never share one. Each allocation is
// a store key made with create-if-absent: the replicated store decides, and
// there is no bitmap to keep consistent.
package servicealloc

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

// Allocator allocates from one service CIDR and the NodePort range, in one
// store.
type Allocator struct {
	store *raft.Store
	cidr  netip.Prefix
}

// New returns an allocator of the addresses in cidr, keeping its keys in
// store.
func New(store *raft.Store, cidr netip.Prefix) *Allocator {
	return &Allocator{store: store, cidr: cidr.Masked()}
}

// KubernetesIP is the ClusterIP of the kubernetes Service: the first address
// of the CIDR, which is never handed out to other Services.
func (a *Allocator) KubernetesIP() netip.Addr { return nthAddr(a.cidr, 1) }

// DNSIP is the ClusterIP of the kube-dns Service, which every node's
// cluster DNS listens on: the tenth address of cidr (10.96.0.10 for
// Kubernetes' default 10.96.0.0/12), never handed out to other Services.
// ok is false when cidr is too small to hold it.
func DNSIP(cidr netip.Prefix) (ip netip.Addr, ok bool) {
	ip = nthAddr(cidr, dnsIPIndex)
	return ip, cidr.Masked().Contains(ip) && ip != nthAddr(cidr, 0)
}

// DNSIP is the kube-dns Service's ClusterIP in this allocator's CIDR.
func (a *Allocator) DNSIP() (netip.Addr, bool) { return DNSIP(a.cidr) }

const dnsIPIndex = 10

func clusterIPKey(ip netip.Addr) string { return allocPrefix + "clusterip/" + ip.String() }
func nodePortKey(p int32) string        { return allocPrefix + "nodeport/" + strconv.Itoa(int(p)) }

// Allocate fills and reserves a new Service's ClusterIP and
// NodePorts. On error nothing stays reserved.
func (a *Allocator) Allocate(ctx context.Context, svc *corev1.Service) (release func(), err error) {
	var keys []string
	release = func() {
		for _, k := range keys {
			a.store.Delete(context.WithoutCancel(ctx), k, 0)
		}
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	owner := []byte(svc.Namespace + "/" + svc.Name)
	reserve := func(key string) error {
		_, err := a.store.Create(ctx, key, owner)
		if err == nil {
			keys = append(keys, key)
		}
		return err
	}
	if svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		if svc.Spec.ClusterIP == "" {
			ip, err := a.pickClusterIP(ctx, reserve)
			if err != nil {
				return release, err
			}
			svc.Spec.ClusterIP = ip.String()
		} else {
			ip, perr := netip.ParseAddr(svc.Spec.ClusterIP)
			if perr != nil || !a.cidr.Contains(ip) {
				return release, invalidService(svc, field.Invalid(field.NewPath("spec", "clusterIP"), svc.Spec.ClusterIP,
					fmt.Sprintf("the provided IP is not in the valid range: the service CIDR is %s", a.cidr)))
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
	return release, a.allocateNodePorts(ctx, svc, reserve)
}

func (a *Allocator) allocateNodePorts(ctx context.Context, svc *corev1.Service, reserve func(string) error) error {
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
// The network address, the first one (the kubernetes Service's) and the
// tenth (kube-dns's) are never handed out.
func (a *Allocator) pickClusterIP(ctx context.Context, reserve func(string) error) (netip.Addr, error) {
	bits := a.cidr.Addr().BitLen() - a.cidr.Bits()
	size := uint64(1) << min(bits, 20) // enough to find a free one; bounds the loop
	if size < 4 {
		return netip.Addr{}, apierrors.NewInternalError(fmt.Errorf("service CIDR %s is too small", a.cidr))
	}
	start := 2 + rand.Uint64N(size-3)
	for n := uint64(0); n < size-2; n++ {
		i := 2 + (start-2+n)%(size-3)
		if i == dnsIPIndex {
			continue
		}
		ip := nthAddr(a.cidr, i)
		err := reserve(clusterIPKey(ip))
		if err == nil {
			return ip, nil
		}
		if !errors.Is(err, raft.ErrKeyExists) {
			return netip.Addr{}, err
		}
	}
	return netip.Addr{}, apierrors.NewInternalError(fmt.Errorf("service CIDR %s is full", a.cidr))
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

// ReleaseFreedPorts frees the NodePorts an update took away from a Service.
// Other objects are left alone, so the write path may call it for any kind.
func (a *Allocator) ReleaseFreedPorts(ctx context.Context, cur, updated runtime.Object) {
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
			a.store.Delete(context.WithoutCancel(ctx), nodePortKey(p.NodePort), 0)
		}
	}
}

// Release frees the addresses of a deleted Service (other objects hold
// none).
func (a *Allocator) Release(ctx context.Context, obj runtime.Object) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if ip, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil {
		a.store.Delete(ctx, clusterIPKey(ip), 0)
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			a.store.Delete(ctx, nodePortKey(p.NodePort), 0)
		}
	}
}

func needsNodePorts(t corev1.ServiceType) bool {
	return t == corev1.ServiceTypeNodePort || t == corev1.ServiceTypeLoadBalancer
}

// FillUpdate keeps the allocated ClusterIP when an update leaves it
// empty (as kubectl replace of a manifest does), drops the fields the new
// type does not have when the type changes (unless the client changed them,
// as Kubernetes does), and gives new NodePorts to ports that need one.
// Other objects are left alone.
func (a *Allocator) FillUpdate(ctx context.Context, cur, next runtime.Object) error {
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
	return a.allocateNodePorts(ctx, &corev1.Service{ObjectMeta: n.ObjectMeta, Spec: corev1.ServiceSpec{Type: n.Spec.Type,
		Ports: n.Spec.Ports}}, func(key string) error {
		// Ports the Service already holds are its own: keep them.
		if kv, _, err := a.store.Get(ctx, key, raft.ReadOptions{}); err == nil && string(kv.Value) == string(owner) {
			return nil
		}
		_, err := a.store.Create(ctx, key, owner)
		return err
	})
}

func invalidService(svc *corev1.Service, errs ...*field.Error) error {
	return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), svc.Name, errs)
}
