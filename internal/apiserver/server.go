// Package apiserver serves the Kubernetes API over the replicated store, so
// that kubectl, client-go and manifests work unchanged against skiff.
//
// Every resource comes from the registry (package registry): routing,
// discovery, OpenAPI and storage read the same table, so one generic code
// path serves built-in kinds now and custom resources later.
package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	psadmission "k8s.io/pod-security-admission/admission"

	"github.com/skiffhq/skiff/internal/apiserver/openapi"
	"github.com/skiffhq/skiff/internal/apiserver/pki"
	"github.com/skiffhq/skiff/internal/apiserver/resources"
	"github.com/skiffhq/skiff/internal/apiserver/serviceaccount"
	"github.com/skiffhq/skiff/internal/apiserver/servicealloc"
	"github.com/skiffhq/skiff/internal/audit"
	"github.com/skiffhq/skiff/raft"
)

// Config configures an API server. Zero values take the documented defaults.
type Config struct {
	// Listen is the HTTPS address. Default "127.0.0.1:6443".
	Listen string
	// PKIDir holds the cluster CA, the serving certificate and the keys
	// that encrypt Secrets at rest. Required.
	PKIDir string
	// Token is the admin bearer token. Required: a server without
	// credentials would hand the cluster to anyone who can reach the port.
	Token string
	// JoinToken, when set, is accepted as a bearer token as Token is: the
	// cluster token in the form that also pins the CA (DataDir/token), so
	// `kubectl --token "$(cat DATA-DIR/token)"` works as the kubeconfig
	// (which carries Token) does.
	JoinToken string
	// Store holds the objects. Required.
	Store *raft.Store
	// ServiceCIDR is the range Service ClusterIPs are allocated from; its
	// first address is the kubernetes Service's. Default "127.67.0.0/16":
	// inside loopback, so nothing leaves the machine.
	ServiceCIDR string
	// Logger receives request errors and lifecycle logs. Default slog.Default().
	Logger *slog.Logger
	// PodStreams serves the streaming pod subresources ("log", "exec",
	// "portforward") by name, relaying them to the pod's node. The handler
	// finds the pod with PodRef. A subresource with no handler answers 405.
	PodStreams map[string]http.Handler
	// Routes are extra handlers served on the API's port beside the
	// Kubernetes API, keyed by ServeMux pattern (the embedded registry's
	// "/v2/"). They do their own authentication: OCI clients authenticate
	// their own way.
	Routes map[string]http.Handler
	// Groups are API groups served by functions of their own beside the
	// stored resources (metrics.k8s.io, custom.metrics.k8s.io): read-only,
	// in discovery, never stored. Their names must differ from the stored
	// groups'.
	Groups []APIGroup
	// DefaultTolerationSeconds, when set, turns on the
	// DefaultTolerationSeconds admission plugin (tolerations.go) with these
	// values. Nil: pods get no default tolerations.
	DefaultTolerationSeconds *DefaultTolerationSeconds
	// ServiceAccountIssuer is the "iss" of ServiceAccount tokens (signed
	// with PKIDir/sa.key). Default https://kubernetes.default.svc.<ClusterDomain>,
	// as kubeadm sets it.
	ServiceAccountIssuer string
	// ClusterDomain is the cluster's DNS domain: the serving certificate
	// also covers kubernetes.default.svc.<ClusterDomain> (and the shorter
	// names, and the kubernetes Service's ClusterIP), so in-cluster clients
	// verify the API with kube-root-ca.crt. Default "cluster.local".
	ClusterDomain string
	// ServiceAccountAdmission turns on the ServiceAccount admission plugin
	// (serviceaccount_admission.go): pods get the default ServiceAccount
	// and its token volume. It needs the ServiceAccount controller, which
	// makes the default ServiceAccounts; off, pods are stored as given.
	ServiceAccountAdmission bool
	// AuditLog, when its Path is set, turns on the audit log
	// (internal/audit): one audit.k8s.io/v1 Event per request.
	AuditLog audit.Config
	// AuditLevel is how much each audit event records. Default Metadata
	// (when AuditLog.Path is set).
	AuditLevel audit.Level
	// DisableRBAC turns authorization off: every authenticated caller may
	// do anything (the anonymous user still only the public paths).
	// Default false: RBAC and the Node authorizer decide (authz.go). For
	// benchmarks' baselines and embedders that authorize elsewhere.
	DisableRBAC bool
}

// Server is a running (or ready to start) API server.
type Server struct {
	cfg      Config
	log      *slog.Logger
	reg      *resources.Table
	scheme   *runtime.Scheme
	codecs   serializer.CodecFactory
	objs     *objectStore
	pki      *pki.PKI
	openapi  http.Handler
	managers *fieldManagers
	metrics  *metrics
	services *servicealloc.Allocator
	// tokenAuthenticators resolve bearer tokens other than the cluster
	// token, in order (authn.go).
	tokenAuthenticators []TokenAuthenticator
	// saTokens mints and checks ServiceAccount tokens (authentication.go).
	saTokens *serviceaccount.Tokens
	// bookmarkInterval is how often a watch that allows bookmarks gets one.
	bookmarkInterval time.Duration
	// quotaLocks serialise quota charges per namespace (resourcequota.go).
	quotaLocks quotaLocks
	// podSecurity is Kubernetes' PodSecurity admission (podsecurity.go).
	podSecurity *psadmission.Admission
	// audit is the open audit log, nil when off (audit.go).
	audit *audit.Log
	// crds are the served CustomResourceDefinitions (customresources.go).
	crds *customResources
	// bg lives from New to Close: the server's own background work.
	bg       context.Context
	bgCancel context.CancelFunc
	// authz is the authorizer chain, set once its caches have synced
	// (authz.go); nil before Start.
	authz *authorizers
	// policies is ValidatingAdmissionPolicy admission, set once Start
	// has built it (admissionpolicy.go).
	policies *policyAdmission

	mu  sync.Mutex
	ln  net.Listener
	srv *http.Server
}

// New prepares a server: the scheme, the registry and the certificates. It
// opens no port.
func New(cfg Config) (*Server, error) {
	if cfg.PKIDir == "" || cfg.Token == "" || cfg.Store == nil {
		return nil, errors.New("apiserver: PKIDir, Token and Store are required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:6443"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ServiceCIDR == "" {
		cfg.ServiceCIDR = "127.67.0.0/16"
	}
	cidr, err := netip.ParsePrefix(cfg.ServiceCIDR)
	if err != nil {
		return nil, fmt.Errorf("apiserver: service CIDR: %w", err)
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("apiserver: listen address %q: %w", cfg.Listen, err)
	}
	scheme, err := resources.NewScheme()
	if err != nil {
		return nil, fmt.Errorf("apiserver: scheme: %w", err)
	}
	reg, err := resources.New(scheme)
	if err != nil {
		return nil, fmt.Errorf("apiserver: %w", err)
	}
	for _, g := range cfg.Groups {
		for _, stored := range reg.Groups() {
			if g.Name == stored.Group {
				return nil, fmt.Errorf("apiserver: group %q is served from the store already", g.Name)
			}
		}
		if len(g.Versions) == 0 {
			return nil, fmt.Errorf("apiserver: group %q has no versions", g.Name)
		}
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	certs, err := pki.LoadOrCreate(cfg.PKIDir, append(certHosts(host), inClusterNames(cidr, cfg.ClusterDomain)...))
	if err != nil {
		return nil, fmt.Errorf("apiserver: %w", err)
	}
	keys, err := pki.LoadKeyring(filepath.Join(cfg.PKIDir, "encryption-keys"))
	if err != nil {
		return nil, fmt.Errorf("apiserver: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "apiserver"), reg: reg, scheme: scheme,
		codecs: serializer.NewCodecFactory(scheme), objs: &objectStore{store: cfg.Store, scheme: scheme, keys: keys}, pki: certs}
	s.openapi = newOpenAPIHandler(reg)
	s.managers = &fieldManagers{scheme: scheme}
	if h, ok := s.openapi.(*openapi.Handler); ok {
		s.managers.schemas = h.ComponentSchemas
	}
	s.metrics = newMetrics(s)
	s.services = servicealloc.New(cfg.Store, cidr)
	s.bookmarkInterval = defaultBookmarkInterval
	s.crds = newCustomResources()
	s.objs.onRead, s.objs.onWrite = s.customOnRead, s.afterWrite
	s.bg, s.bgCancel = context.WithCancel(context.Background())
	if err := s.startServiceAccounts(); err != nil {
		return nil, fmt.Errorf("apiserver: %w", err)
	}
	if s.podSecurity, err = s.newPodSecurity(); err != nil {
		return nil, fmt.Errorf("apiserver: %w", err)
	}
	if cfg.AuditLog.Path != "" {
		if s.cfg.AuditLevel == "" {
			s.cfg.AuditLevel = audit.LevelMetadata
		}
		if _, err := audit.ParseLevel(string(s.cfg.AuditLevel)); err != nil {
			return nil, fmt.Errorf("apiserver: %w", err)
		}
		if cfg.AuditLog.Logger == nil {
			s.cfg.AuditLog.Logger = cfg.Logger
		}
		if s.audit, err = audit.Open(s.cfg.AuditLog); err != nil {
			return nil, fmt.Errorf("apiserver: %w", err)
		}
	}
	s.cfg.Groups = append(s.cfg.Groups, s.accessReviewGroup())
	return s, nil
}

// certHosts are the names the serving certificate covers: loopback always,
// the host name, and the listen host when it is specific.
func certHosts(listenHost string) []string {
	hosts := []string{"127.0.0.1", "::1", "localhost"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, strings.ToLower(h))
	}
	if listenHost != "" && listenHost != "0.0.0.0" && listenHost != "::" {
		hosts = append(hosts, listenHost)
	}
	return hosts
}

// Start listens and serves until Close. It also makes sure the objects
// every cluster has exist: the namespaces default, kube-system,
// kube-public and kube-node-lease, and the kubernetes Service.
func (s *Server) Start(ctx context.Context) error {
	if err := s.ensureDefaults(ctx); err != nil {
		return fmt.Errorf("apiserver: default objects: %w", err)
	}
	s.loadCRDs(ctx)
	go s.watchCRDs(s.bg)
	if err := s.ensureRBACPolicy(ctx); err != nil {
		return fmt.Errorf("apiserver: bootstrap RBAC policy: %w", err)
	}
	if err := s.startAuthorizers(ctx); err != nil {
		return fmt.Errorf("apiserver: %w", err)
	}
	if err := s.startAdmissionPolicies(); err != nil {
		s.stopAuthorizers()
		return fmt.Errorf("apiserver: %w", err)
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		s.stopAuthorizers()
		return fmt.Errorf("apiserver: listen on %s: %w", s.cfg.Listen, err)
	}
	if err := s.ensureKubernetesEndpoints(ctx, ln.Addr()); err != nil {
		ln.Close()
		return fmt.Errorf("apiserver: %w", err)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		// HTTP/2 is negotiated by ALPN (client-go prefers it); streaming
		// upgrades (exec, port-forward) will ask for HTTP/1.1 themselves.
		// Client certificates are asked for and, when given, must chain to
		// the cluster CA: they are users (authn.go).
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{s.pki.Serving}, MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: s.clientCAs()},
	}
	s.mu.Lock()
	s.ln, s.srv = ln, srv
	s.mu.Unlock()
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("API server stopped", "err", err)
		}
	}()
	s.log.Info("API server listening", "url", s.URL())
	return nil
}

// Close stops serving; open watches end. ctx bounds the wait for requests
// in flight.
func (s *Server) Close(ctx context.Context) error {
	s.bgCancel()
	defer s.stopAuthorizers()
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if s.audit != nil {
		// After the requests in flight, so their events are written.
		defer s.audit.Close()
	}
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		return srv.Close()
	}
	return nil
}

// URL is the server's https URL (with the bound port once started).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	addr := s.cfg.Listen
	if s.ln != nil {
		addr = s.ln.Addr().String()
	}
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}

// CAPEM is the cluster CA certificate clients trust.
func (s *Server) CAPEM() []byte { return s.pki.CAPEM }

// Kubeconfig is a kubeconfig for the admin: the server's URL, the cluster
// CA, the bearer token, and the default namespace.
func (s *Server) Kubeconfig() ([]byte, error) { return s.pki.Kubeconfig(s.URL(), s.cfg.Token) }

// Handler is the whole API behind authentication. It needs no socket: an
// embedding program can call it in-process.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, p := range []string{"/healthz", "/livez", "/readyz"} {
		mux.HandleFunc(p, s.health)
		mux.HandleFunc(p+"/", s.health)
	}
	mux.Handle("/metrics", s.metrics.handler())
	mux.HandleFunc("/version", s.version)
	mux.HandleFunc("/version/", s.version)
	mux.Handle("/openapi/v2", s.openapi)
	mux.Handle("/openapi/v3", s.openapi)
	mux.Handle("/openapi/v3/", s.openapi)
	mux.Handle(serviceaccount.OpenIDConfigurationPath, s.saTokens.DiscoveryHandler())
	mux.Handle(serviceaccount.JWKSPath, s.saTokens.DiscoveryHandler())
	mux.HandleFunc("/api", s.serveAPI)
	mux.HandleFunc("/api/", s.serveAPI)
	mux.HandleFunc("/apis", s.serveAPI)
	mux.HandleFunc("/apis/", s.serveAPI)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, notFoundPath(r.URL.Path))
	})
	api := s.withAudit(s.authenticate(withAuditUser(s.authorize(withAuthorized(withWarnings(s.recoverPanics(mux)))))))
	if len(s.cfg.Routes) == 0 {
		return api
	}
	outer := http.NewServeMux()
	outer.Handle("/", api)
	for pattern, h := range s.cfg.Routes {
		outer.Handle(pattern, s.recoverPanics(h))
	}
	return outer
}

// public reports whether r may be answered without credentials: reading the
// health checks and the version, as Kubernetes' default
// system:public-info-viewer role allows (verb get only).
func public(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	for _, pub := range []string{"/healthz", "/livez", "/readyz", "/version"} {
		if r.URL.Path == pub || strings.HasPrefix(r.URL.Path, pub+"/") {
			return true
		}
	}
	return false
}

func (s *Server) clientCAs() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.pki.CA)
	return pool
}

// recoverPanics turns a handler panic into a 500 Status for that request
// only: a bad request must never take the server down. Panics are bugs, so
// they are logged loudly.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(w, apierrors.NewInternalError(fmt.Errorf("%v", v)))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/readyz") {
		if id, _ := s.cfg.Store.Leader(); id == "" {
			http.Error(w, "[-]store failed: no raft leader\nreadyz check failed", http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, "ok")
}
