package bus

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// DefaultReadyTimeout is how long Start waits for the server to accept
// connections when Config.ReadyTimeout is zero. Binding listeners takes
// milliseconds; ten seconds leaves room for a loaded machine without hiding a
// real failure for long.
const DefaultReadyTimeout = 10 * time.Second

// clusterName is the NATS cluster name of every skiff server. Servers with
// different cluster names refuse to route to each other; a fixed name keeps
// that from getting in the way, and the cluster token keeps strangers out.
const clusterName = "skiff"

// clusterUser is the user name routes authenticate with; Config.ClusterToken
// is its password.
const clusterUser = "skiff"

// The bus's identities. Every client connection authenticates as one of
// them, with a user name and a password; nothing connects anonymously.
const (
	// NodeUser is the identity of node agents: Dial connects as it with
	// Config.Token as its password, and Server.ConnectNode in process. It
	// may use only Config.NodePermissions' subjects. Every node shares it
	// until nodes get credentials of their own.
	NodeUser = "node"
	// controlPlaneUser is the identity of Server.Connect: full permissions,
	// a random password made at Start that never leaves the process, and
	// in-process connections only, so it cannot be used over the network
	// even if the password leaked.
	controlPlaneUser = "control-plane"
)

// nats-server's connection types (jwt.ConnectionType*), for
// server.User.AllowedConnectionTypes: a TCP client, and one over
// Server.Connect's in-process pipe.
const (
	connTypeStandard  = "STANDARD"
	connTypeInProcess = "IN_PROCESS"
)

// Permissions are the subjects an identity may publish to and subscribe to
// (NATS wildcards allowed); everything else is refused by the server.
type Permissions struct {
	Publish   []string
	Subscribe []string
}

// InboxSubjects matches the reply subjects nats.go makes (nats.NewInbox and
// request replies): a node needs it both ways to send and receive replies.
const InboxSubjects = "_INBOX.>"

// DefaultNodePermissions is what the node identity may do when
// Config.NodePermissions is nil: the engine's subjects and reply inboxes,
// both ways. Never JetStream's API or data ($JS.>, $KV.>, $O.>), nor the
// server's system subjects ($SYS.>): the embedded registry's JetStream
// traffic belongs to the control plane, and nodes reach it over
// skiff.registry.http.
func DefaultNodePermissions() *Permissions {
	return &Permissions{
		Publish:   []string{"skiff.>", InboxSubjects},
		Subscribe: []string{"skiff.>", InboxSubjects},
	}
}

// Config configures an embedded bus server. The zero value is not valid: Name
// is required.
type Config struct {
	// Name is the server's name, required and unique within a cluster (NATS
	// refuses a route between two servers of the same name). The node name is a
	// good choice. It may not contain whitespace.
	Name string

	// Listen is the client listener's "host:port". Empty (the default) is
	// single-node mode: no port is opened at all and the only way in is
	// Server.Connect, an in-process pipe. Port 0 picks an ephemeral port; read
	// it back with ClientURL.
	Listen string

	// Token is the node identity's password (NodeUser): what Dial presents.
	// Required when Listen is set, so a listening bus is never open to
	// anyone who can reach the port. Without a listener it may be empty: the
	// node identity then gets a random password only ConnectNode knows.
	Token string

	// NodePermissions are the subjects the node identity may publish and
	// subscribe to. Default nil: DefaultNodePermissions.
	NodePermissions *Permissions

	// TLS is the TLS configuration of the client listener: a serving
	// certificate clients verify (set ClientAuth to also require client
	// certificates). Required when Listen is set, so that the node password
	// never crosses a network in clear and a client knows whose bus it
	// joins. Clients use standard NATS TLS: the server's INFO greeting is
	// sent in clear, then the connection upgrades before the client sends
	// anything (see docs/rationale.md).
	TLS *tls.Config

	// ClusterListen is the cluster route listener's "host:port". Empty (the
	// default) means the server is not clustered. Port 0 picks an ephemeral
	// port; read it back with ClusterAddr. Requires Listen: nats-server only
	// starts routing once its client listener is up.
	ClusterListen string

	// Routes are the "host:port" cluster listeners of other servers to connect
	// to. Servers learn the rest of the cluster from each other, so one live
	// peer is enough. Requires ClusterListen. Default none.
	Routes []string

	// ClusterToken authenticates routes in both directions: a server whose
	// token differs cannot join. Required when ClusterListen is set.
	ClusterToken string

	// ClusterTLS secures routes in both directions, as one config for both
	// ends (a certificate valid as server and client, the cluster CA as
	// RootCAs and ClientCAs, a client certificate required): a skiff server
	// reaches another's route port only with a certificate from the
	// cluster's CA. Default nil: plain TCP routes, for tests on loopback.
	// Only with ClusterListen.
	ClusterTLS *tls.Config

	// Logger receives nats-server's own logs and the bus's. Default
	// slog.Default(). NATS debug logs are produced only when the handler is
	// enabled at Debug; the per-message protocol trace only when it is enabled
	// at Debug-4 (it is then logged at Debug).
	Logger *slog.Logger

	// ReadyTimeout bounds how long Start waits for the server to be ready for
	// connections. Default DefaultReadyTimeout.
	ReadyTimeout time.Duration

	// JetStreamDir, if set, enables JetStream (persistent streams, key-value
	// and object stores) with file storage; nats-server keeps its files in
	// JetStreamDir/jetstream. Every write is fsynced before JetStream
	// acknowledges it (nats-server's sync_interval "always"), so an
	// acknowledged write survives a crash, as the raft store's do. Default
	// empty: no JetStream, and nothing is written to disk.
	JetStreamDir string

	// JetStreamMaxStore bounds the disk JetStream may use, in bytes. Default
	// 0: nats-server's own default (a share of the disk's free space).
	// Requires JetStreamDir.
	JetStreamMaxStore int64
}

// Server is a running embedded NATS server.
type Server struct {
	ns        *server.Server
	cpSecret  string // controlPlaneUser's password, made at Start
	nodeToken string // NodeUser's password: Config.Token or a random one
	tls       bool
	log       *slog.Logger
	closed    atomic.Bool
	closeOnce sync.Once
}

// Start validates cfg, starts the server and waits until it is ready for
// connections (at most cfg.ReadyTimeout, and not past ctx's deadline). ctx
// bounds the start only; the server runs until Close. On error nothing is left
// running.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cpSecret, err := randomSecret()
	if err != nil {
		return nil, fmt.Errorf("bus: start %q: %w", cfg.Name, err)
	}
	nodeToken := cfg.Token
	if nodeToken == "" {
		if nodeToken, err = randomSecret(); err != nil {
			return nil, fmt.Errorf("bus: start %q: %w", cfg.Name, err)
		}
	}
	opts, err := cfg.natsOptions(cpSecret, nodeToken)
	if err != nil {
		return nil, fmt.Errorf("bus: start %q: %w", cfg.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bus: start %q: %w", cfg.Name, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("bus", cfg.Name)

	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bus: start %q: %w: %w", cfg.Name, ErrInvalidConfig, err)
	}
	nl := newNATSLogger(log.With("component", "nats-server"))
	debug, trace := nl.flags()
	ns.SetLoggerV2(nl, debug, trace, false)
	ns.Start()

	s := &Server{ns: ns, cpSecret: cpSecret, nodeToken: nodeToken, tls: cfg.TLS != nil, log: log}
	if err := s.waitReady(ctx, orDefault(cfg.ReadyTimeout, DefaultReadyTimeout), nl.fatal); err != nil {
		s.Close()
		return nil, fmt.Errorf("bus: start %q: %w", cfg.Name, err)
	}
	log.Info("bus: server ready", "client_url", s.ClientURL(), "cluster", s.ClusterAddr(), "configured_routes", len(cfg.Routes))
	return s, nil
}

// randomSecret is 32 random bytes, hex-encoded.
func randomSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// waitReady polls the server until it is ready, it reports a fatal error
// (a listener could not bind), ctx ends or timeout passes.
func (s *Server) waitReady(ctx context.Context, timeout time.Duration, fatal <-chan string) error {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for {
		// Each call polls for up to 50ms (every 25ms inside nats-server).
		if s.ns.ReadyForConnections(50 * time.Millisecond) {
			return nil
		}
		select {
		case msg := <-fatal:
			return fmt.Errorf("%w: %s", ErrNotReady, msg)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v", ErrNotReady, timeout)
		}
	}
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// natsOptions validates the config and translates it into nats-server
// options, with cpSecret and nodeToken the passwords of the control-plane and
// node identities.
func (cfg Config) natsOptions(cpSecret, nodeToken string) (*server.Options, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	if cfg.Name == "" {
		return nil, bad("Name is required")
	}
	if strings.ContainsFunc(cfg.Name, unicode.IsSpace) {
		return nil, bad("Name %q contains whitespace", cfg.Name)
	}
	if cfg.ReadyTimeout < 0 {
		return nil, bad("ReadyTimeout %v is negative", cfg.ReadyTimeout)
	}
	if cfg.JetStreamMaxStore < 0 {
		return nil, bad("JetStreamMaxStore %d is negative", cfg.JetStreamMaxStore)
	}
	if cfg.JetStreamMaxStore > 0 && cfg.JetStreamDir == "" {
		return nil, bad("JetStreamMaxStore is set but JetStreamDir is empty")
	}
	nodePerms := cfg.NodePermissions
	if nodePerms == nil {
		nodePerms = DefaultNodePermissions()
	}
	if len(nodePerms.Publish) == 0 || len(nodePerms.Subscribe) == 0 {
		// nats-server reads an empty allow list as "everything".
		return nil, bad("NodePermissions must allow some subjects to publish and to subscribe to")
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		NoSigs:     true, // the embedding program owns signals
		// No token and no anonymous user: every connection names an
		// identity, so what it may do follows from who it is.
		Users: []*server.User{
			{
				Username:               controlPlaneUser,
				Password:               cpSecret,
				AllowedConnectionTypes: map[string]struct{}{connTypeInProcess: {}},
			},
			{
				Username: NodeUser,
				Password: nodeToken,
				Permissions: &server.Permissions{
					Publish:   &server.SubjectPermission{Allow: slices.Clone(nodePerms.Publish)},
					Subscribe: &server.SubjectPermission{Allow: slices.Clone(nodePerms.Subscribe)},
				},
				AllowedConnectionTypes: map[string]struct{}{connTypeStandard: {}, connTypeInProcess: {}},
			},
		},
	}
	if cfg.JetStreamDir != "" {
		opts.JetStream = true
		opts.StoreDir = cfg.JetStreamDir
		opts.JetStreamMaxStore = cfg.JetStreamMaxStore
		// An acknowledged write must be on disk: the default fsyncs every
		// two minutes and would lose the last ones on a power cut.
		opts.SyncAlways = true
		opts.DisableJetStreamBanner = true
	}
	if cfg.Listen == "" {
		if cfg.TLS != nil {
			return nil, bad("TLS is set but Listen is empty (single-node mode has no listener)")
		}
		opts.DontListen = true
	} else {
		if cfg.Token == "" {
			return nil, bad("Listen %q is set but Token is empty: a listening bus must require a token", cfg.Listen)
		}
		if cfg.TLS == nil {
			return nil, bad("Listen %q is set but TLS is nil: a listening bus must use TLS", cfg.Listen)
		}
		host, port, err := parseHostPort(cfg.Listen)
		if err != nil {
			return nil, bad("Listen: %v", err)
		}
		opts.Host, opts.Port = host, port
		opts.TLSConfig = cfg.TLS.Clone()
	}

	if cfg.ClusterListen == "" {
		if len(cfg.Routes) > 0 {
			return nil, bad("Routes are set but ClusterListen is empty")
		}
		return opts, nil
	}
	if cfg.Listen == "" {
		// nats-server starts routing only after the client listener is up:
		// with DontListen, routes never start and Shutdown hangs (v2.15.2).
		return nil, bad("ClusterListen %q is set but Listen is empty: a clustered server needs a client listener", cfg.ClusterListen)
	}
	if cfg.ClusterToken == "" {
		return nil, bad("ClusterListen %q is set but ClusterToken is empty", cfg.ClusterListen)
	}
	host, port, err := parseHostPort(cfg.ClusterListen)
	if err != nil {
		return nil, bad("ClusterListen: %v", err)
	}
	opts.Cluster = server.ClusterOpts{
		Name:     clusterName,
		Host:     host,
		Port:     port,
		Username: clusterUser,
		Password: cfg.ClusterToken,
	}
	if cfg.ClusterTLS != nil {
		opts.Cluster.TLSConfig = cfg.ClusterTLS.Clone()
		opts.Cluster.TLSTimeout = 5 // seconds; nats-server's default of 2 is short for a loaded edge box
	}
	for _, r := range cfg.Routes {
		if _, _, err := parseHostPort(r); err != nil {
			return nil, bad("route %q: %v", r, err)
		}
		opts.Routes = append(opts.Routes, &url.URL{
			Scheme: "nats",
			User:   url.UserPassword(clusterUser, cfg.ClusterToken),
			Host:   r,
		})
	}
	return opts, nil
}

// parseHostPort splits "host:port" and returns nats-server's port: port 0 is
// turned into server.RANDOM_PORT, because nats-server reads 0 as "the default
// port" (4222) rather than "any port".
func parseHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: not a number in 0-65535", p)
	}
	if port == 0 {
		return host, server.RANDOM_PORT, nil
	}
	return host, int(port), nil
}

// Connect returns a control-plane client connection to this server over an
// in-process pipe (never a socket, also when the server listens), with full
// permissions. name identifies the connection in the server's logs and
// monitoring. The connection does not reconnect: it ends when the server
// closes.
func (s *Server) Connect(ctx context.Context, name string) (*Conn, error) {
	return s.connectAs(ctx, name, controlPlaneUser, s.cpSecret)
}

// ConnectNode is Connect as the node identity: the connection may use only
// Config.NodePermissions' subjects, as a node agent that dialled in would.
// A server node's own agent uses it, so that it runs under the same rules
// as every other node.
func (s *Server) ConnectNode(ctx context.Context, name string) (*Conn, error) {
	return s.connectAs(ctx, name, NodeUser, s.nodeToken)
}

func (s *Server) connectAs(ctx context.Context, name, user, password string) (*Conn, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("bus: connect %q: %w", name, ErrClosed)
	}
	log := s.log.With("conn", name)
	opts := append(connHandlers(log),
		nats.InProcessServer(s.ns),
		nats.Name(name),
		nats.NoReconnect(),
		nats.UserInfo(user, password),
	)
	nc, err := connect(ctx, nats.DefaultURL, DefaultDialTimeout, opts)
	if err != nil {
		return nil, fmt.Errorf("bus: connect %q: %w", name, err)
	}
	return &Conn{nc: nc, log: log}, nil
}

// ClientURL is the URL network clients Dial ("nats://host:port", "tls://…"
// with TLS), with the bound port. It is "" in single-node mode.
func (s *Server) ClientURL() string {
	addr := s.ns.Addr()
	if addr == nil {
		return ""
	}
	scheme := "nats"
	if s.tls {
		scheme = "tls"
	}
	return scheme + "://" + addr.String()
}

// ClusterAddr is the bound "host:port" of the cluster route listener, for
// other servers' Config.Routes. It is "" when the server is not clustered.
func (s *Server) ClusterAddr() string {
	addr := s.ns.ClusterAddr()
	if addr == nil {
		return ""
	}
	return addr.String()
}

// NumRoutes is the number of other servers this one is connected to through
// routes. A peer counts once, although NATS pools several TCP connections per
// peer.
func (s *Server) NumRoutes() int {
	return s.ns.NumRemotes()
}

// Close shuts the server down, closing its clients and routes, and waits for
// it to finish. Safe to call more than once and concurrently.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.log.Info("bus: server closed")
	})
}

// connect runs nats.Connect bounded by ctx and by timeout per dial attempt.
// nats.Connect takes no context, so a ctx that ends first abandons the attempt
// and closes the connection if it still arrives.
func connect(ctx context.Context, url string, timeout time.Duration, opts []nats.Option) (*nats.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(d), time.Millisecond))
	}
	opts = append([]nats.Option{nats.Timeout(timeout)}, opts...)
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(url, opts...)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, authError(r.err)
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// authError makes a refused token recognisable: nats.go returns the server's
// "-ERR 'Authorization Violation'" on the first connect as a plain protocol
// error, not as nats.ErrAuthorization.
func authError(err error) error {
	if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		return err
	}
	if strings.EqualFold(err.Error(), ErrUnauthorized.Error()) {
		return ErrUnauthorized
	}
	return fmt.Errorf("%w (%v)", ErrUnauthorized, err)
}
