// Package proxy is skiff's userspace Service proxy, the fallback of
// unprivileged mode where eBPF socket load balancing is not available. It
// follows Services and EndpointSlices (on a node, over the bus: see
// internal/node/servicefeed; it needs no API access) and, for every TCP Service port with
// a ready endpoint, listens on the cluster IP (when it lies in 127.0.0.0/8,
// which Linux routes to lo, so any such address can be bound without
// setup) and on the node address at the node port, and splices each
// accepted connection to an endpoint chosen round robin, honouring ClientIP
// session affinity. It dials the endpoint from the client's own address
// when that is a loopback one (a pod's, in unprivileged mode), so the
// endpoint — and its NetworkPolicy — sees the client pod, not the proxy.
//
// What it does not do: UDP and SCTP (skipped, logged once per port), cluster
// IPs outside loopback (skipped, logged once: it never adds addresses to
// host interfaces), external IPs and load-balancer ingress addresses. A
// cluster IP port below 1024 needs the privilege to bind it
// (net.ipv4.ip_unprivileged_port_start); without it the port is skipped and
// logged.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/skiffhq/skiff/internal/informer"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Config of a proxy. Zero values take the documented defaults.
type Config struct {
	// Services and EndpointSlices are where the proxy learns the cluster's
	// Services and their endpoints: on a node, the bus feed from the
	// control plane (servicefeed.Subscriber.ListerWatcher). Required.
	Services, EndpointSlices cache.ListerWatcher
	// NodeName is the node this proxy runs on, for traffic policy Local
	// (only endpoints on this node). Default "": the policies are ignored
	// and every endpoint is used.
	NodeName string
	// NodeAddress is where node ports listen. Default "127.0.0.1", the
	// node address of unprivileged mode.
	NodeAddress string
	// DialTimeout bounds one dial to an endpoint. Default 2s: endpoints
	// are on this machine's loopback, where a live one answers at once and
	// a dead one refuses at once; only a full accept queue is slow.
	DialTimeout time.Duration
	// MaxConnections bounds the proxied connections open at once; more are
	// reset as they arrive. Default 4096 (each costs two sockets and two
	// goroutines).
	MaxConnections int
	// EndpointAllowed, when set, is asked before a client's connection is
	// sent to an endpoint: endpoints it refuses are skipped, and a client
	// refused every endpoint is reset as when none is ready. The node sets
	// it to the client pod's NetworkPolicy egress (policy.Evaluator's
	// AllowEgressFrom), which Kubernetes applies after the Service's
	// translation to an endpoint: the proxy is where that translation is
	// made. Default nil: every endpoint.
	EndpointAllowed func(client netip.Addr, endpoint netip.AddrPort) bool
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Stats are the proxy's counters since Start.
type Stats struct {
	Listeners  int    // frontend addresses listened on now
	Accepted   uint64 // connections accepted on frontends
	Active     int64  // client connections open now
	Proxied    uint64 // connections spliced to an endpoint
	Dropped    uint64 // connections reset without an endpoint: none answered, or MaxConnections reached
	DialErrors uint64 // endpoint dials that failed (each attempt counts)
	BindErrors uint64 // frontend binds that failed (each attempt counts)
	BytesIn    uint64 // bytes from clients to endpoints
	BytesOut   uint64 // bytes from endpoints to clients
}

type counters struct {
	accepted, proxied, dropped, dialErrors, bindErrors, acceptErrors, bytesIn, bytesOut atomic.Uint64
	active                                                                              atomic.Int64
}

// Proxy is a running userspace Service proxy.
type Proxy struct {
	cfg      Config
	log      *slog.Logger
	nodeAddr netip.Addr

	services corelisters.ServiceLister
	slices   discoverylisters.EndpointSliceLister
	queue    workqueue.TypedRateLimitingInterface[string]

	stats  counters
	table  *table
	cancel context.CancelFunc
	wg     sync.WaitGroup

	warnMu sync.Mutex
	warned map[string]bool // service key + what, logged once until the Service goes
}

// dnsServiceKey is the kube-dns Service, which the proxy leaves alone: each
// node's cluster DNS server (internal/clusterdns) binds its ClusterIP, port
// 53, UDP and TCP, itself and answers there. The proxy would bind the same
// TCP address (and clash with the DNS server, whichever came second
// failing) only to forward to nothing: the Service has no selector and no
// endpoints, because nothing stands behind it but the node's own server.
const dnsServiceKey = "kube-system/kube-dns"

// maxRetries bounds the quick retries of a Service whose address could not
// be bound (taken by another process, or by a Service not yet torn down);
// after them the informers' periodic resync retries it every resyncPeriod.
const (
	maxRetries   = 10
	resyncPeriod = 5 * time.Minute
)

// Start builds the informers and starts serving. It does not wait for
// them to sync: a node whose control plane is out of reach for now starts
// all the same, and serves once the first lists arrive.
func Start(cfg Config) (*Proxy, error) {
	if cfg.Services == nil || cfg.EndpointSlices == nil {
		return nil, errors.New("proxy: Services and EndpointSlices are required")
	}
	if cfg.NodeAddress == "" {
		cfg.NodeAddress = "127.0.0.1"
	}
	nodeAddr, err := netip.ParseAddr(cfg.NodeAddress)
	if err != nil {
		return nil, fmt.Errorf("proxy: NodeAddress: %w", err)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p := &Proxy{cfg: cfg, log: cfg.Logger.With("component", "service-proxy"), nodeAddr: nodeAddr, cancel: cancel,
		warned: map[string]bool{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "service-proxy"})}
	p.table = newTable(runCtx, cfg.DialTimeout, cfg.MaxConnections, &p.stats)
	p.table.allow = cfg.EndpointAllowed

	// The resync period doubles as the slow retry of binds that failed.
	svcInf := cache.NewSharedIndexInformer(cfg.Services, &corev1.Service{}, resyncPeriod,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	sliceInf := cache.NewSharedIndexInformer(cfg.EndpointSlices, &discoveryv1.EndpointSlice{}, resyncPeriod,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	p.services = corelisters.NewServiceLister(svcInf.GetIndexer())
	p.slices = discoverylisters.NewEndpointSliceLister(sliceInf.GetIndexer())
	synced := []cache.InformerSynced{svcInf.HasSynced, sliceInf.HasSynced}
	if _, err := svcInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    p.enqueueService,
		UpdateFunc: func(_, o any) { p.enqueueService(o) },
		DeleteFunc: p.enqueueService,
	}); err != nil {
		cancel()
		return nil, fmt.Errorf("proxy: %w", err)
	}
	if _, err := sliceInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    p.enqueueSlice,
		UpdateFunc: func(_, o any) { p.enqueueSlice(o) },
		DeleteFunc: p.enqueueSlice,
	}); err != nil {
		cancel()
		return nil, fmt.Errorf("proxy: %w", err)
	}
	for _, inf := range []cache.SharedIndexInformer{svcInf, sliceInf} {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			inf.Run(runCtx.Done())
		}()
	}
	// One worker: syncs only bind sockets and swap routes, and one worker
	// keeps two Services from racing for an address one is giving up. It
	// starts once both informers hold a full list, so a Service is never
	// bound with the endpoints of a half-known cluster.
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if !cache.WaitForCacheSync(runCtx.Done(), synced...) {
			return
		}
		for p.processNext() {
		}
	}()
	return p, nil
}

// Stop closes every listener and every live proxied connection, and waits
// for all the proxy's goroutines.
func (p *Proxy) Stop() {
	p.cancel()
	p.queue.ShutDown()
	p.wg.Wait()
	p.table.close()
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		Listeners:  len(p.table.addrs()),
		Accepted:   p.stats.accepted.Load(),
		Active:     p.stats.active.Load(),
		Proxied:    p.stats.proxied.Load(),
		Dropped:    p.stats.dropped.Load(),
		DialErrors: p.stats.dialErrors.Load(),
		BindErrors: p.stats.bindErrors.Load(),
		BytesIn:    p.stats.bytesIn.Load(),
		BytesOut:   p.stats.bytesOut.Load(),
	}
}

// Addresses lists the frontend addresses listened on now (ip:port), sorted.
func (p *Proxy) Addresses() []string {
	a := p.table.addrs()
	sort.Strings(a)
	return a
}

func (p *Proxy) enqueueService(o any) {
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
		p.queue.Add(key)
	}
}

func (p *Proxy) enqueueSlice(o any) {
	if s, ok := informer.ObjectOf[*discoveryv1.EndpointSlice](o); ok && s.Labels[discoveryv1.LabelServiceName] != "" {
		p.queue.Add(s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName])
	}
}

func (p *Proxy) processNext() bool {
	key, shutdown := p.queue.Get()
	if shutdown {
		return false
	}
	defer p.queue.Done(key)
	if err := p.sync(key); err != nil && p.queue.NumRequeues(key) < maxRetries {
		p.queue.AddRateLimited(key)
	} else {
		p.queue.Forget(key)
	}
	return true
}

// sync makes one Service's listeners match its spec and endpoints. It
// returns an error when a bind failed in a way worth retrying soon.
func (p *Proxy) sync(key string) error {
	if key == dnsServiceKey {
		return nil
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := p.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		p.table.apply(key, nil)
		p.forgetWarnings(key)
		return nil
	}
	if err != nil {
		return err
	}
	slices, err := p.slices.EndpointSlices(ns).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name}))
	if err != nil {
		return err
	}
	fronts, skips := desiredFrontends(svc, slices, p.cfg.NodeName, p.nodeAddr)
	for _, s := range skips {
		p.warnOnce(key, s.what, "service port not proxied", "service", key, "what", s.what, "reason", s.why)
	}
	var retry []error
	for _, e := range p.table.apply(key, fronts) {
		msg := "service address not bound"
		if errors.Is(e.err, syscall.EADDRINUSE) {
			// Expected where several nodes share one machine: the first
			// node's proxy serves the address for all of them.
			msg = "service address in use on this machine (another node's proxy, or another program, holds it)"
		}
		p.warnOnce(key, "bind "+e.addr+" "+e.err.Error(), msg, "service", key,
			"address", e.addr, "err", e.err, "retrying", !e.permanent())
		if !e.permanent() {
			retry = append(retry, e)
		}
	}
	return errors.Join(retry...)
}

func (p *Proxy) warnOnce(key, what, msg string, args ...any) {
	p.warnMu.Lock()
	seen := p.warned[key+"|"+what]
	p.warned[key+"|"+what] = true
	p.warnMu.Unlock()
	if !seen {
		p.log.Warn(msg, args...)
	}
}

func (p *Proxy) forgetWarnings(key string) {
	p.warnMu.Lock()
	defer p.warnMu.Unlock()
	for k := range p.warned {
		if strings.HasPrefix(k, key+"|") {
			delete(p.warned, k)
		}
	}
}
