// Package policy decides NetworkPolicy (networking.k8s.io/v1) for the pods
// of a node, one connection at a time. The Wasm runtime owns every socket
// its guests open (their listeners and, through the sockets extension,
// their outbound connections), so it can ask before a connection is made
// or accepted, and no packet filter is needed: the agent gives each Wasm
// container a Firewall for its pod (runtime.ContainerSpec.Firewall), and
// the runtime calls it at connect and accept.
//
// The Evaluator follows NetworkPolicies, Pods and Namespaces — and, to see
// through ClusterIPs, Services and EndpointSlices — with client-go informers
// over ListerWatchers: on a node those of the bus feed
// (internal/node/servicefeed), so it needs no API access. A decision reads
// the informers' indexes and nothing else: no decision is cached, so a
// policy change applies to the next connection once the feed has brought
// it (the feed pushes each change as it happens).
//
// Semantics are Kubernetes', as the NetworkPolicy documentation states
// them:
//   - a pod is isolated for ingress (egress) only when a policy in its
//     namespace selects it and has Ingress (Egress) among its policyTypes;
//     policyTypes left empty mean Ingress, plus Egress when the policy has
//     egress rules;
//   - traffic to an isolated pod is allowed when any rule of any policy
//     selecting it allows it: policies add up, they never subtract;
//   - a rule's peers are pods (podSelector, in the policy's namespace;
//     namespaceSelector; both, for pods matching both), or ipBlock with
//     except; a rule with no peers allows every peer, one with no ports every
//     port; a port is a number, a range (endPort) or a name, resolved against
//     the destination pod's container ports (for ingress the selected pod's,
//     for egress the peer's), with protocol TCP when none is given;
//   - a pod's traffic to its own address is never filtered, nor is traffic
//     between a pod and its node (the node's addresses, Config.NodeAddresses:
//     in unprivileged mode 127.0.0.1, from which the agent probes and the
//     Service proxy dials when it cannot keep the client's address).
//
// Peers are known by address: a peer address that is the IP of a pod
// (running or pending: not Succeeded, Failed, or on the host network) is
// that pod; any other address matches ipBlock peers only. An ipBlock
// matches pod addresses too.
//
// Services. NetworkPolicy applies after a Service's ClusterIP has been
// translated to a backend, and on a node the translation is the Service
// proxy's, made after the pod's connection to the ClusterIP is accepted.
// So a ClusterIP is decided in two steps. The pod's Firewall, asked for a
// connection to a ClusterIP and port, resolves them through the Service and
// its EndpointSlices and allows the connection when the policy allows at
// least one ready backend (a caller that has already translated passes the
// backend's address, which is decided as is). The proxy then asks
// AllowEgressFrom for each backend it might choose, and sends the
// connection only to an allowed one. The backend's own Firewall sees the
// client pod's address for ingress: the proxy dials from it.
package policy

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

// Config of an Evaluator.
type Config struct {
	// NetworkPolicies, Pods and Namespaces are where the evaluator learns
	// the cluster's policies and the peers they name: on a node, the bus
	// feed (servicefeed.Subscriber.ListerWatcher). Required. Pods may be
	// stripped to what policy reads: name, namespace, uid, labels, the
	// containers' ports, status.phase and status.podIPs.
	NetworkPolicies, Pods, Namespaces cache.ListerWatcher
	// Services and EndpointSlices, when both are set, let egress decisions
	// see through ClusterIPs to the backends (see the package
	// documentation). Without them a ClusterIP is decided as any other
	// address.
	Services, EndpointSlices cache.ListerWatcher
	// NodeAddresses are the addresses of the node the pods run on, whose
	// traffic to and from its pods Kubernetes always allows. Default
	// 127.0.0.1 and ::1, the node's addresses in unprivileged mode.
	NodeAddresses []netip.Addr
	// SyncTimeout bounds how long after Start decisions wait for the
	// informers' first lists; from then until the lists arrive, decisions
	// are denials at once (a policy not yet known must not be bypassed).
	// Default 5s.
	SyncTimeout time.Duration
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Index names of the evaluator's informers.
const (
	ipIndex        = "ip"      // pods by each of status.podIPs; Services by each cluster IP
	serviceIndex   = "service" // EndpointSlices by namespace/service name
	namespaceIndex = cache.NamespaceIndex
)

// Evaluator decides NetworkPolicy for pods. Safe for concurrent use.
type Evaluator struct {
	log *slog.Logger

	policies   cache.Indexer
	pods       cache.Indexer
	namespaces cache.Indexer
	services   cache.Indexer // nil without Config.Services
	slices     cache.Indexer // nil without Config.EndpointSlices

	nodeAddrs []netip.Addr
	syncBy    time.Time     // decisions before synced wait until then, and deny after it
	synced    chan struct{} // closed once every informer has its first list
	warnOnce  sync.Once

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start builds the informers and runs them. It does not wait for their
// first lists: decisions wait for them instead (Config.SyncTimeout).
func Start(cfg Config) (*Evaluator, error) {
	if cfg.NetworkPolicies == nil || cfg.Pods == nil || cfg.Namespaces == nil {
		return nil, errors.New("policy: NetworkPolicies, Pods and Namespaces are required")
	}
	if (cfg.Services == nil) != (cfg.EndpointSlices == nil) {
		return nil, errors.New("policy: Services and EndpointSlices go together")
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	runCtx, cancel := context.WithCancel(context.Background())
	if len(cfg.NodeAddresses) == 0 {
		cfg.NodeAddresses = defaultNodeAddresses()
	}
	e := &Evaluator{log: cfg.Logger.With("component", "network-policy"), syncBy: time.Now().Add(cfg.SyncTimeout),
		nodeAddrs: cfg.NodeAddresses, synced: make(chan struct{}), cancel: cancel}
	// No resync: nothing here acts on events, the indexes are all.
	infs := []cache.SharedIndexInformer{
		cache.NewSharedIndexInformer(cfg.NetworkPolicies, &networkingv1.NetworkPolicy{}, 0, policyIndexers()),
		cache.NewSharedIndexInformer(cfg.Pods, &corev1.Pod{}, 0, podIndexers()),
		cache.NewSharedIndexInformer(cfg.Namespaces, &corev1.Namespace{}, 0, cache.Indexers{}),
	}
	e.policies, e.pods, e.namespaces = infs[0].GetIndexer(), infs[1].GetIndexer(), infs[2].GetIndexer()
	if cfg.Services != nil {
		infs = append(infs,
			cache.NewSharedIndexInformer(cfg.Services, &corev1.Service{}, 0, serviceIndexers()),
			cache.NewSharedIndexInformer(cfg.EndpointSlices, &discoveryv1.EndpointSlice{}, 0, sliceIndexers()))
		e.services, e.slices = infs[3].GetIndexer(), infs[4].GetIndexer()
	}
	var synced []cache.InformerSynced
	for _, inf := range infs {
		synced = append(synced, inf.HasSynced)
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			inf.Run(runCtx.Done())
		}()
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if cache.WaitForCacheSync(runCtx.Done(), synced...) {
			close(e.synced)
		}
	}()
	return e, nil
}

// NewFromObjects is an Evaluator over a fixed set of objects
// (NetworkPolicies, Pods, Namespaces, Services, EndpointSlices), ready at
// once: for tests of what calls a Firewall, and of the rules themselves.
// Other kinds of object are ignored. The node's addresses are the default
// ones (Config.NodeAddresses).
func NewFromObjects(objs ...runtime.Object) *Evaluator {
	e := &Evaluator{log: slog.Default().With("component", "network-policy"), synced: make(chan struct{}),
		nodeAddrs:  defaultNodeAddresses(),
		policies:   cache.NewIndexer(cache.MetaNamespaceKeyFunc, policyIndexers()),
		pods:       cache.NewIndexer(cache.MetaNamespaceKeyFunc, podIndexers()),
		namespaces: cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{}),
		services:   cache.NewIndexer(cache.MetaNamespaceKeyFunc, serviceIndexers()),
		slices:     cache.NewIndexer(cache.MetaNamespaceKeyFunc, sliceIndexers()),
		cancel:     func() {}}
	close(e.synced)
	for _, o := range objs {
		var err error
		switch o.(type) {
		case *networkingv1.NetworkPolicy:
			err = e.policies.Add(o)
		case *corev1.Pod:
			err = e.pods.Add(o)
		case *corev1.Namespace:
			err = e.namespaces.Add(o)
		case *corev1.Service:
			err = e.services.Add(o)
		case *discoveryv1.EndpointSlice:
			err = e.slices.Add(o)
		}
		if err != nil {
			// The indexers' functions fail on no object of their kind.
			panic("policy: " + err.Error())
		}
	}
	return e
}

// Stop ends the informers. Decisions after Stop use what they last held.
func (e *Evaluator) Stop() {
	e.cancel()
	e.wg.Wait()
}

// ready is whether the informers have their first lists, waiting for them
// until SyncTimeout after Start: one deadline for all decisions, so that a
// node whose control plane is out of reach denies at once rather than
// stalling every connection.
func (e *Evaluator) ready() bool {
	select {
	case <-e.synced:
		return true
	default:
	}
	if wait := time.Until(e.syncBy); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-e.synced:
			return true
		case <-t.C:
		}
	}
	e.warnOnce.Do(func() {
		e.log.Warn("network policies not known yet; denying pods' connections until the feed answers")
	})
	return false
}

func defaultNodeAddresses() []netip.Addr {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
}

func policyIndexers() cache.Indexers {
	return cache.Indexers{namespaceIndex: cache.MetaNamespaceIndexFunc}
}

// podIndexers index pods by namespace and by address. A pod that has ended
// (its address may already be another's) or that shares the node's
// network is no peer by address.
func podIndexers() cache.Indexers {
	return cache.Indexers{
		namespaceIndex: cache.MetaNamespaceIndexFunc,
		ipIndex: func(o any) ([]string, error) {
			p, ok := o.(*corev1.Pod)
			if !ok || p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				return nil, nil
			}
			return addrKeys(podIPs(p)), nil
		},
	}
}

func serviceIndexers() cache.Indexers {
	return cache.Indexers{ipIndex: func(o any) ([]string, error) {
		s, ok := o.(*corev1.Service)
		if !ok {
			return nil, nil
		}
		ips := s.Spec.ClusterIPs
		if len(ips) == 0 && s.Spec.ClusterIP != "" {
			ips = []string{s.Spec.ClusterIP}
		}
		var addrs []netip.Addr
		for _, ip := range ips {
			if a, err := netip.ParseAddr(ip); err == nil { // "None" (headless) is no address
				addrs = append(addrs, a.Unmap())
			}
		}
		return addrKeys(addrs), nil
	}}
}

func sliceIndexers() cache.Indexers {
	return cache.Indexers{serviceIndex: func(o any) ([]string, error) {
		s, ok := o.(*discoveryv1.EndpointSlice)
		if !ok || s.Labels[discoveryv1.LabelServiceName] == "" {
			return nil, nil
		}
		return []string{s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]}, nil
	}}
}

func addrKeys(addrs []netip.Addr) []string {
	keys := make([]string, len(addrs))
	for i, a := range addrs {
		keys[i] = a.String()
	}
	return keys
}

// podIPs are the pod's addresses, from status.podIPs (or status.podIP).
func podIPs(p *corev1.Pod) []netip.Addr {
	var out []netip.Addr
	for _, ip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	if len(out) == 0 && p.Status.PodIP != "" {
		if a, err := netip.ParseAddr(p.Status.PodIP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}
