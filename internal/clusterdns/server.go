// Package clusterdns is skiff's embedded cluster DNS server, what CoreDNS
// with its kubernetes plugin is to a Kubernetes cluster. Every node runs one,
// on the kube-dns Service's ClusterIP, port 53, UDP and TCP; pods' resolv.conf
// names that address.
//
// It answers the cluster domain (cluster.local by default) as the Kubernetes
// DNS specification says: A and AAAA records for Services (the ClusterIP; a
// headless Service's ready endpoint addresses), a CNAME for ExternalName
// Services, SRV records _port._proto.svc.ns.svc.cluster.local for named
// ports, each headless endpoint's own name (hostname.svc.ns.svc.cluster.local,
// from the EndpointSlice's hostname or its address with dashes), pod names
// 1-2-3-4.ns.pod.cluster.local (any such name, as CoreDNS's "pods insecure"
// mode, Kubernetes' default), and PTR records for Service and endpoint
// addresses. A name that exists with no record of the type asked answers
// NODATA, one that does not exist NXDOMAIN, both with the zone's SOA.
// Everything else (other names, and reverse names of addresses the cluster
// does not know) is forwarded to the node's resolvers.
//
// Like the Service proxy it needs no API access: it follows Services and
// EndpointSlices through client-go informers over any ListerWatcher (on a
// node, the bus feed of internal/node/servicefeed), and keeps its index in
// memory, so a query is a map lookup.
package clusterdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/informer"
)

// Config of a DNS server. Zero values take the documented defaults.
type Config struct {
	// Services and EndpointSlices are where the server learns the
	// cluster's names: on a node, the bus feed from the control plane
	// (servicefeed.Subscriber.ListerWatcher). Required.
	Services, EndpointSlices cache.ListerWatcher
	// Listen is the address served, UDP and TCP ("ip:port"): on a node the
	// kube-dns Service's ClusterIP, port 53. Port 0 picks a free port (the
	// same for both). Required.
	Listen string
	// Domain is the cluster domain. Default "cluster.local".
	Domain string
	// Upstreams are the resolvers ("ip:port") names outside the cluster are
	// forwarded to, tried in order. Default: the nameservers of ResolvConf.
	Upstreams []string
	// ResolvConf is the node's resolver configuration, read for Upstreams
	// when they are not given. Default "/etc/resolv.conf".
	ResolvConf string
	// TTL of the cluster's records, and of negative answers. Default 5 s,
	// CoreDNS's kubernetes plugin's.
	TTL uint32
	// ForwardTimeout bounds one query to one upstream. Default 2 s.
	ForwardTimeout time.Duration
	// BindRetry is how often a failed bind is tried again (the address may
	// be held by another node's DNS on the same machine, which serves the
	// same cluster, until it stops). Default 30 s.
	BindRetry time.Duration
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Server is a running cluster DNS server.
type Server struct {
	cfg       Config
	log       *slog.Logger
	zone      string // lower case, fully qualified
	upstreams []string
	idx       *index
	synced    atomic.Bool

	services corelisters.ServiceLister
	slices   discoverylisters.EndpointSliceLister

	// syncMu makes reading a Service with its slices and writing its names
	// one step, so that two informers' handlers cannot write an older view
	// over a newer one.
	syncMu sync.Mutex

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	addr      string // what is served, once bound
	udp, tcp  *dns.Server
	lastError string // the last bind error logged
}

// Start checks cfg, starts the informers and binds Listen. A failed bind is
// logged (with what to do about it) and retried every BindRetry, and Start
// still returns the server: a node without its DNS still runs its pods.
// Queries for the cluster domain answer SERVFAIL until both informers have
// listed, so that no client caches an NXDOMAIN of a half-known cluster.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Services == nil || cfg.EndpointSlices == nil {
		return nil, errors.New("clusterdns: Services and EndpointSlices are required")
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return nil, fmt.Errorf("clusterdns: Listen %q: %w", cfg.Listen, err)
	}
	if cfg.Domain == "" {
		cfg.Domain = "cluster.local"
	}
	if _, ok := dns.IsDomainName(cfg.Domain); !ok {
		return nil, fmt.Errorf("clusterdns: Domain %q is no domain name", cfg.Domain)
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	if cfg.TTL == 0 {
		cfg.TTL = 5
	}
	if cfg.ForwardTimeout <= 0 {
		cfg.ForwardTimeout = 2 * time.Second
	}
	if cfg.BindRetry <= 0 {
		cfg.BindRetry = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "cluster-dns"), zone: dns.CanonicalName(cfg.Domain),
		ctx: runCtx, cancel: cancel}
	s.idx = newIndex(s.zone)
	s.upstreams = s.findUpstreams()

	svcInf := cache.NewSharedIndexInformer(cfg.Services, &corev1.Service{}, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	sliceInf := cache.NewSharedIndexInformer(cfg.EndpointSlices, &discoveryv1.EndpointSlice{}, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	s.services = corelisters.NewServiceLister(svcInf.GetIndexer())
	s.slices = discoverylisters.NewEndpointSliceLister(sliceInf.GetIndexer())
	svcReg, err := svcInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.serviceChanged,
		UpdateFunc: func(_, o any) { s.serviceChanged(o) },
		DeleteFunc: s.serviceChanged,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("clusterdns: %w", err)
	}
	sliceReg, err := sliceInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.sliceChanged,
		UpdateFunc: func(_, o any) { s.sliceChanged(o) },
		DeleteFunc: s.sliceChanged,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("clusterdns: %w", err)
	}
	for _, inf := range []cache.SharedIndexInformer{svcInf, sliceInf} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			inf.Run(runCtx.Done())
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if cache.WaitForCacheSync(runCtx.Done(), svcReg.HasSynced, sliceReg.HasSynced) {
			s.synced.Store(true)
			s.log.Debug("cluster DNS has the cluster's Services", "zone", s.zone)
		}
	}()

	if err := s.bind(); err != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.retryBind()
		}()
	}
	return s, nil
}

// Stop closes the listeners and waits for the server's goroutines.
func (s *Server) Stop() {
	s.cancel()
	s.mu.Lock()
	udp, tcp := s.udp, s.tcp
	s.udp, s.tcp, s.addr = nil, nil, ""
	s.mu.Unlock()
	for _, srv := range []*dns.Server{udp, tcp} {
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			srv.ShutdownContext(ctx)
			cancel()
		}
	}
	s.wg.Wait()
}

// Addr is the address served ("ip:port", UDP and TCP), or "" while the
// bind has not succeeded.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Synced reports whether the server has listed the cluster's Services and
// EndpointSlices, and so answers for the cluster domain.
func (s *Server) Synced() bool { return s.synced.Load() }

// findUpstreams is Config.Upstreams, or the node's nameservers; never the
// address this server listens on, which would loop.
func (s *Server) findUpstreams() []string {
	ups := s.cfg.Upstreams
	if ups == nil {
		cc, err := dns.ClientConfigFromFile(s.cfg.ResolvConf)
		if err != nil {
			s.log.Warn("no upstream resolvers: names outside the cluster will not resolve", "resolv_conf", s.cfg.ResolvConf, "err", err)
			return nil
		}
		for _, ns := range cc.Servers {
			ups = append(ups, net.JoinHostPort(ns, cc.Port))
		}
	}
	listen, _ := netip.ParseAddrPort(s.cfg.Listen)
	var out []string
	for _, u := range ups {
		if ap, err := netip.ParseAddrPort(u); err == nil && ap == listen {
			continue
		}
		out = append(out, u)
	}
	return out
}

// bind listens on Listen, UDP and TCP, and starts serving.
func (s *Server) bind() error {
	pc, err := net.ListenPacket("udp", s.cfg.Listen)
	if err != nil {
		s.bindFailed(err)
		return err
	}
	host, _, _ := net.SplitHostPort(s.cfg.Listen)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		pc.Close()
		s.bindFailed(err)
		return err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	handler := dns.HandlerFunc(s.ServeDNS)
	udp := &dns.Server{PacketConn: pc, Handler: handler}
	tcp := &dns.Server{Listener: l, Handler: handler, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		pc.Close()
		l.Close()
		return s.ctx.Err()
	}
	s.udp, s.tcp, s.addr = udp, tcp, addr
	s.mu.Unlock()
	// Wait until both serve: a miekg/dns server that has not started
	// cannot be shut down, and Stop may come right after Start.
	for _, srv := range []*dns.Server{udp, tcp} {
		started, done := make(chan struct{}), make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(done)
			if err := srv.ActivateAndServe(); err != nil && s.ctx.Err() == nil {
				s.log.Error("cluster DNS stopped serving", "addr", addr, "err", err)
			}
		}()
		select {
		case <-started:
		case <-done:
		}
	}
	s.log.Info("cluster DNS serving", "addr", addr, "zone", s.zone, "upstreams", s.upstreams)
	return nil
}

// bindFailed logs a bind error once (until it changes), saying why it
// likely failed.
func (s *Server) bindFailed(err error) {
	s.mu.Lock()
	repeated := s.lastError == err.Error()
	s.lastError = err.Error()
	s.mu.Unlock()
	if repeated {
		return
	}
	why := "pods' lookups of cluster names will fail until it binds"
	level := slog.LevelError
	switch {
	case errors.Is(err, syscall.EACCES):
		why = "binding a port below 1024 needs root, CAP_NET_BIND_SERVICE or net.ipv4.ip_unprivileged_port_start<=53; " + why
	case errors.Is(err, syscall.EADDRINUSE):
		// Expected where several nodes of a cluster share one machine: the
		// first node's server answers for all of them.
		level = slog.LevelWarn
		why = "another node's cluster DNS on this machine (which answers for the same cluster), or another program, holds it"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		why = "the address is on no interface of this machine (the service CIDR must lie in 127.0.0.0/8 without privileged networking); " + why
	}
	s.log.Log(context.Background(), level, "cluster DNS address not bound", "addr", s.cfg.Listen, "err", err, "why", why,
		"retry_every", s.cfg.BindRetry)
}

func (s *Server) retryBind() {
	t := time.NewTicker(s.cfg.BindRetry)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if s.bind() == nil {
			return
		}
	}
}

// serviceChanged and sliceChanged run on the informers' goroutines.
func (s *Server) serviceChanged(o any) {
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
		s.sync(key)
	}
}

func (s *Server) sliceChanged(o any) {
	if sl, ok := informer.ObjectOf[*discoveryv1.EndpointSlice](o); ok && sl.Labels[discoveryv1.LabelServiceName] != "" {
		s.sync(sl.Namespace + "/" + sl.Labels[discoveryv1.LabelServiceName])
	}
}

// sync rebuilds one Service's names from the informers' caches.
func (s *Server) sync(key string) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return
	}
	svc, err := s.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		s.idx.set(key, nil)
		return
	}
	if err != nil {
		s.log.Warn("cluster DNS: service not read", "service", key, "err", err)
		return
	}
	var slices []*discoveryv1.EndpointSlice
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		slices, err = s.slices.EndpointSlices(ns).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name}))
		if err != nil {
			s.log.Warn("cluster DNS: endpoint slices not read", "service", key, "err", err)
			return
		}
	}
	s.idx.set(key, serviceNames(s.zone, svc, slices))
}

// inZone reports whether name (lower case, fully qualified) is the zone or
// below it.
func (s *Server) inZone(name string) bool {
	return name == s.zone || strings.HasSuffix(name, "."+s.zone)
}
