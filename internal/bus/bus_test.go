package bus

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skiffhq/skiff/internal/testutil"
)

// wait bounds every blocking step of these tests.
const wait = 10 * time.Second

type event struct {
	Node string `json:"node"`
	N    int    `json:"n"`
}

type addReq struct {
	A, B  int
	Fail  string
	Panic bool
}

type addResp struct{ Sum int }

func add(_ context.Context, r addReq) (addResp, error) {
	if r.Panic {
		panic("boom")
	}
	if r.Fail != "" {
		return addResp{}, errors.New(r.Fail)
	}
	return addResp{Sum: r.A + r.B}, nil
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	t.Cleanup(cancel)
	return ctx
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testutil.Logger(t)
	}
	s, err := Start(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Start(%s): %v", cfg.Name, err)
	}
	t.Cleanup(s.Close)
	return s
}

func inProc(t *testing.T, s *Server, name string) *Conn {
	t.Helper()
	c, err := s.Connect(testCtx(t), name)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func dial(t *testing.T, url, token, name string, tlsConf *tls.Config, opts ...nats.Option) *Conn {
	t.Helper()
	c, err := Dial(testCtx(t), url, token, name, tlsConf, opts...)
	if err != nil {
		t.Fatalf("Dial(%s): %v", url, err)
	}
	t.Cleanup(c.Close)
	return c
}

// receive returns the next value from ch, failing the test after wait.
func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("nothing received after %v", wait)
		panic("unreachable")
	}
}

func TestSingleNode(t *testing.T) {
	s := start(t, Config{Name: "solo"})
	if got := s.ClientURL(); got != "" {
		t.Errorf("ClientURL() = %q, want empty in single-node mode", got)
	}
	if addr := s.ns.Addr(); addr != nil {
		t.Errorf("server listens on %v, want no client listener", addr)
	}
	if got := s.ClusterAddr(); got != "" {
		t.Errorf("ClusterAddr() = %q, want empty", got)
	}
	c := inProc(t, s, "engine")
	ctx := testCtx(t)

	t.Run("PublishSubscribe", func(t *testing.T) {
		got := make(chan event, 10)
		sub, err := Subscribe(ctx, c, "test.events.>", func(_ context.Context, subject string, v event) {
			if subject == "test.events.a" {
				got <- v
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Stop()
		if err := Publish(ctx, c, "test.events.a", event{Node: "a", N: 1}); err != nil {
			t.Fatal(err)
		}
		if v := receive(t, got); v != (event{Node: "a", N: 1}) {
			t.Errorf("received %+v", v)
		}
	})

	t.Run("RequestServe", func(t *testing.T) {
		sub, err := Serve(ctx, c, "test.add", "", add)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Stop()
		resp, err := Request[addReq, addResp](ctx, c, "test.add", addReq{A: 2, B: 3})
		if err != nil || resp.Sum != 5 {
			t.Fatalf("Request = %+v, %v; want Sum 5", resp, err)
		}

		_, err = Request[addReq, addResp](ctx, c, "test.add", addReq{Fail: "no such pod"})
		if !errors.Is(err, ErrRemote) || !strings.Contains(err.Error(), "no such pod") {
			t.Errorf("handler error: got %v, want ErrRemote with the handler's message", err)
		}

		_, err = Request[addReq, addResp](ctx, c, "test.add", addReq{Panic: true})
		if !errors.Is(err, ErrRemote) || !strings.Contains(err.Error(), "panicked") {
			t.Errorf("panicking handler: got %v, want ErrRemote mentioning the panic", err)
		}
		resp, err = Request[addReq, addResp](ctx, c, "test.add", addReq{A: 40, B: 2})
		if err != nil || resp.Sum != 42 {
			t.Fatalf("request after a panic = %+v, %v; want Sum 42", resp, err)
		}

		// A request whose payload does not decode into the responder's type.
		_, err = Request[string, addResp](ctx, c, "test.add", "not an addReq")
		if !errors.Is(err, ErrRemote) || !strings.Contains(err.Error(), "bad payload") {
			t.Errorf("undecodable request: got %v, want ErrRemote about the payload", err)
		}
	})

	t.Run("NoResponders", func(t *testing.T) {
		_, err := Request[addReq, addResp](ctx, c, "test.nobody", addReq{})
		if !errors.Is(err, ErrNoResponders) || !errors.Is(err, nats.ErrNoResponders) {
			t.Errorf("got %v, want ErrNoResponders", err)
		}
	})

	t.Run("RequestDeadline", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		sub, err := Serve(ctx, c, "test.stuck", "", func(context.Context, addReq) (addResp, error) {
			<-release
			return addResp{}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Stop()
		rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err = Request[addReq, addResp](rctx, c, "test.stuck", addReq{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want context.DeadlineExceeded", err)
		}
	})

	t.Run("UndecodableDropped", func(t *testing.T) {
		got := make(chan event, 10)
		sub, err := Subscribe(ctx, c, "test.mixed", func(_ context.Context, _ string, v event) { got <- v })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Stop()
		if err := c.NATS().Publish("test.mixed", []byte("{not json")); err != nil {
			t.Fatal(err)
		}
		if err := Publish(ctx, c, "test.mixed", event{N: 7}); err != nil {
			t.Fatal(err)
		}
		// Messages from one connection arrive in order: had the bad one been
		// delivered (as a zero value), it would come first.
		if v := receive(t, got); v.N != 7 {
			t.Errorf("first delivered message = %+v, want the good one (N 7)", v)
		}
	})

	t.Run("SubscriberPanicDropped", func(t *testing.T) {
		got := make(chan event, 10)
		sub, err := Subscribe(ctx, c, "test.panicky", func(_ context.Context, _ string, v event) {
			if v.N == 0 {
				panic("subscriber boom")
			}
			got <- v
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Stop()
		for _, n := range []int{0, 1} {
			if err := Publish(ctx, c, "test.panicky", event{N: n}); err != nil {
				t.Fatal(err)
			}
		}
		if v := receive(t, got); v.N != 1 {
			t.Errorf("received %+v, want N 1", v)
		}
	})

	t.Run("ContextEndsSubscription", func(t *testing.T) {
		subCtx, cancel := context.WithCancel(ctx)
		sub, err := Subscribe(subCtx, c, "test.ctx", func(context.Context, string, event) {})
		if err != nil {
			t.Fatal(err)
		}
		if !sub.sub.IsValid() {
			t.Fatal("subscription not valid after Subscribe")
		}
		cancel()
		testutil.Eventually(t, wait, func() error {
			if sub.sub.IsValid() {
				return errors.New("still subscribed after ctx ended")
			}
			return nil
		})
		sub.Stop() // idempotent after the context already stopped it
	})
}

func TestSingleNodeWithToken(t *testing.T) {
	// A token on a non-listening server also applies to in-process clients;
	// Connect must present it.
	s := start(t, Config{Name: "solo-token", Token: "in-process-secret"})
	c := inProc(t, s, "engine")
	if err := c.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestCloseIdempotentAndConnectAfterClose(t *testing.T) {
	s := start(t, Config{Name: "closing"})
	c := inProc(t, s, "engine")
	s.Close()
	s.Close()
	if _, err := s.Connect(testCtx(t), "late"); !errors.Is(err, ErrClosed) {
		t.Errorf("Connect after Close: got %v, want ErrClosed", err)
	}
	testutil.Eventually(t, wait, func() error {
		if !c.NATS().IsClosed() {
			return errors.New("in-process connection still open after server Close")
		}
		return nil
	})
}

// cluster starts n servers routed to the first one, all on 127.0.0.1 with
// ephemeral client and cluster ports, and waits for the full mesh.
func cluster(t *testing.T, n int, token, clusterToken string) []*Server {
	t.Helper()
	cfg := func(i int, routes []string) Config {
		return Config{
			Name:          fmt.Sprintf("s%d", i+1),
			Listen:        "127.0.0.1:0",
			Token:         token,
			TLS:           testTLS.server,
			ClusterListen: "127.0.0.1:0",
			ClusterToken:  clusterToken,
			Routes:        routes,
		}
	}
	servers := []*Server{start(t, cfg(0, nil))}
	for i := 1; i < n; i++ {
		servers = append(servers, start(t, cfg(i, []string{servers[0].ClusterAddr()})))
	}
	testutil.Eventually(t, wait, func() error {
		for _, s := range servers {
			if got := s.NumRoutes(); got != n-1 {
				return fmt.Errorf("%s has %d routes, want %d", s.ns.Name(), got, n-1)
			}
		}
		return nil
	})
	return servers
}

func TestCluster(t *testing.T) {
	const token = "client-secret"
	servers := cluster(t, 3, token, "cluster-secret")
	for _, s := range servers {
		if !strings.HasPrefix(s.ClientURL(), "tls://127.0.0.1:") || !strings.HasPrefix(s.ClusterAddr(), "127.0.0.1:") {
			t.Fatalf("addresses %q, %q: want ephemeral ports on 127.0.0.1", s.ClientURL(), s.ClusterAddr())
		}
	}
	c1 := dial(t, servers[0].ClientURL(), token, "c1", testTLS.client)
	c2 := dial(t, servers[1].ClientURL(), token, "c2", testTLS.client)
	c3 := dial(t, servers[2].ClientURL(), token, "c3", testTLS.client)
	ctx := testCtx(t)

	t.Run("PublishAcrossServers", func(t *testing.T) {
		subject, err := SubjectHeartbeat("node-a")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1000)
		sub, err := Subscribe(ctx, c3, SubjectHeartbeatAny, func(_ context.Context, subject string, v event) {
			got <- subject
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Stop()
		if err := c3.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		// Interest travels from server 3 to server 1 asynchronously: publish
		// until one message arrives (each try's message may arrive later).
		n := 0
		testutil.Eventually(t, wait, func() error {
			n++
			if err := Publish(ctx, c1, subject, event{Node: "node-a", N: n}); err != nil {
				return err
			}
			if err := c1.Flush(ctx); err != nil {
				return err
			}
			select {
			case s := <-got:
				if s != subject {
					t.Fatalf("received on %q, want %q", s, subject)
				}
				return nil
			default:
				return fmt.Errorf("no heartbeat on server 3 after %d publishes on server 1", n)
			}
		})
	})

	t.Run("RequestAcrossServers", func(t *testing.T) {
		subject, err := SubjectNodeSync("node-a")
		if err != nil {
			t.Fatal(err)
		}
		sub, err := Serve(ctx, c1, subject, "sync", add)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Stop()
		if err := c1.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		var resp addResp
		testutil.Eventually(t, wait, func() error {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			resp, err = Request[addReq, addResp](rctx, c2, subject, addReq{A: 20, B: 22})
			return err
		})
		if resp.Sum != 42 {
			t.Errorf("Sum = %d, want 42", resp.Sum)
		}
		_, err = Request[addReq, addResp](ctx, c2, subject, addReq{Fail: "node unknown"})
		if !errors.Is(err, ErrRemote) || !strings.Contains(err.Error(), "node unknown") {
			t.Errorf("remote error across servers: got %v", err)
		}
	})
}

func TestClientAuth(t *testing.T) {
	s := start(t, Config{Name: "auth", Listen: "127.0.0.1:0", Token: "right", TLS: testTLS.server})
	for _, token := range []string{"", "wrong"} {
		c, err := Dial(testCtx(t), s.ClientURL(), token, "intruder", testTLS.client)
		if err == nil {
			c.Close()
			t.Fatalf("Dial with token %q succeeded, want an authorization error", token)
		}
		if !errors.Is(err, nats.ErrAuthorization) || !errors.Is(err, ErrUnauthorized) {
			t.Errorf("Dial with token %q: got %v, want ErrUnauthorized", token, err)
		}
	}
	c := dial(t, s.ClientURL(), "right", "agent", testTLS.client)
	if err := c.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// recorder is a slog handler that keeps messages and forwards to next.
type recorder struct {
	next  slog.Handler
	mu    *sync.Mutex
	lines *[]string
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{next: testutil.Logger(t).Handler(), mu: new(sync.Mutex), lines: new([]string)}
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (r *recorder) Handle(ctx context.Context, rec slog.Record) error {
	r.mu.Lock()
	*r.lines = append(*r.lines, rec.Message)
	r.mu.Unlock()
	return r.next.Handle(ctx, rec)
}
func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.next = r.next.WithAttrs(as)
	return &c
}
func (r *recorder) WithGroup(g string) slog.Handler {
	c := *r
	c.next = r.next.WithGroup(g)
	return &c
}

func (r *recorder) saw(substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range *r.lines {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

func TestRouteAuth(t *testing.T) {
	rec := newRecorder(t)
	good := start(t, Config{Name: "good", Listen: "127.0.0.1:0", Token: "t", TLS: testTLS.server, ClusterListen: "127.0.0.1:0", ClusterToken: "right", Logger: slog.New(rec)})

	// A server with the wrong cluster token tries to route to good; good
	// refuses it. Wait for the refusal in good's log, then check no route
	// formed. (Only good's count is checked: the soliciting side registers the
	// route on the peer's INFO, before the refusal arrives, and retries every
	// second, so its count may blink to 1.)
	start(t, Config{Name: "bad", Listen: "127.0.0.1:0", Token: "t", TLS: testTLS.server, ClusterListen: "127.0.0.1:0", ClusterToken: "wrong", Routes: []string{good.ClusterAddr()}})
	testutil.Eventually(t, wait, func() error {
		if !rec.saw("authentication error") {
			return errors.New("good server has not refused the route yet")
		}
		return nil
	})
	if n := good.NumRoutes(); n != 0 {
		t.Fatalf("good server has %d routes after refusing a wrong token, want 0", n)
	}

	// Control: the right token forms a route; good then counts only that one.
	ok := start(t, Config{Name: "ok", Listen: "127.0.0.1:0", Token: "t", TLS: testTLS.server, ClusterListen: "127.0.0.1:0", ClusterToken: "right", Routes: []string{good.ClusterAddr()}})
	testutil.Eventually(t, wait, func() error {
		if n, m := good.NumRoutes(), ok.NumRoutes(); n != 1 || m != 1 {
			return fmt.Errorf("routes good %d, ok %d; want 1 each", n, m)
		}
		return nil
	})
}

func TestStartPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().String()
	for name, cfg := range map[string]Config{
		"client":            {Listen: busy, Token: "x", TLS: testTLS.server},
		"client, clustered": {Listen: busy, Token: "x", TLS: testTLS.server, ClusterListen: "127.0.0.1:0", ClusterToken: "c"},
		"cluster":           {Listen: "127.0.0.1:0", Token: "x", TLS: testTLS.server, ClusterListen: busy, ClusterToken: "c"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.Name, cfg.Logger = "busy", testutil.Logger(t)
			// Fails as soon as nats-server reports the bind error, not after
			// ReadyTimeout (not asserted: timings are not tested), and leaves
			// nothing running (Close inside Start returns).
			s, err := Start(testCtx(t), cfg)
			if err == nil {
				s.Close()
				t.Fatal("Start on a port in use succeeded")
			}
			if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "address already in use") {
				t.Errorf("got %v, want ErrNotReady with the bind error", err)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	s := start(t, Config{Name: "tls", Listen: "127.0.0.1:0", Token: "secret", TLS: testTLS.server})
	if !strings.HasPrefix(s.ClientURL(), "tls://127.0.0.1:") {
		t.Fatalf("ClientURL() = %q, want tls://", s.ClientURL())
	}
	c := dial(t, s.ClientURL(), "secret", "agent", testTLS.client)
	if err := c.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// The in-process connection needs no TLS.
	ic := inProc(t, s, "engine")
	if err := ic.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// A client that does not trust the certificate is refused.
	c, err := Dial(testCtx(t), s.ClientURL(), "secret", "untrusting", nil)
	if err == nil {
		c.Close()
		t.Fatal("Dial without the CA succeeded")
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Dial without the CA: got %v, want a certificate error", err)
	}
}

// testTLS is a server TLS config with a self-signed certificate for
// 127.0.0.1, and a client config that trusts it; made once, shared by the
// tests.
var testTLS = func() struct{ server, client *tls.Config } {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "skiff-bus-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return struct{ server, client *tls.Config }{
		server: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
			MinVersion:   tls.VersionTLS12,
		},
		client: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}
}()

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no name", Config{}, "Name is required"},
		{"name with space", Config{Name: "a b"}, "whitespace"},
		{"listen without token", Config{Name: "n", Listen: "127.0.0.1:0", TLS: testTLS.server}, "Token is empty"},
		{"listen without TLS", Config{Name: "n", Listen: "127.0.0.1:0", Token: "t"}, "TLS is nil"},
		{"listen not host:port", Config{Name: "n", Listen: "127.0.0.1", Token: "t", TLS: testTLS.server}, "Listen"},
		{"listen port out of range", Config{Name: "n", Listen: "127.0.0.1:70000", Token: "t", TLS: testTLS.server}, "port"},
		{"tls without listen", Config{Name: "n", TLS: &tls.Config{}}, "TLS"},
		{"cluster without token", Config{Name: "n", Listen: "127.0.0.1:0", Token: "t", TLS: testTLS.server, ClusterListen: "127.0.0.1:0"}, "ClusterToken is empty"},
		{"cluster without listen", Config{Name: "n", ClusterListen: "127.0.0.1:0", ClusterToken: "c"}, "Listen is empty"},
		{"routes without cluster", Config{Name: "n", Routes: []string{"127.0.0.1:1"}}, "ClusterListen is empty"},
		{"bad route", Config{Name: "n", Listen: "127.0.0.1:0", Token: "t", TLS: testTLS.server, ClusterListen: "127.0.0.1:0", ClusterToken: "c", Routes: []string{"nowhere"}}, "route"},
		{"empty node permissions", Config{Name: "n", NodePermissions: &Permissions{Publish: []string{"skiff.>"}}}, "NodePermissions"},
		{"negative timeout", Config{Name: "n", ReadyTimeout: -time.Second}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Start(testCtx(t), tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Start succeeded, want a config error")
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrInvalidConfig mentioning %q", err, tt.want)
			}
		})
	}
}

func TestSubjects(t *testing.T) {
	helpers := map[string]func(string) (string, error){
		"skiff.node.node-1.pods":    SubjectNodePods,
		"skiff.node.node-1.sync":    SubjectNodeSync,
		"skiff.node.node-1.status":  SubjectNodeStatus,
		"skiff.node.node-1.objects": SubjectNodeObjects,
		"skiff.node.node-1.streams": SubjectNodeStreams,
		"skiff.heartbeat.node-1":    SubjectHeartbeat,
		"skiff.node.node-1.usage":   SubjectNodeUsage,
	}
	for want, f := range helpers {
		if got, err := f("node-1"); got != want || err != nil {
			t.Errorf("got %q, %v; want %q", got, err, want)
		}
		for _, bad := range []string{"", "a*", ">", "a b", "a\tb", "a\nb", "\xff", "a\u00a0b"} {
			if got, err := f(bad); !errors.Is(err, ErrInvalidToken) || got != "" {
				t.Errorf("%s(%q) = %q, %v; want ErrInvalidToken", want, bad, got, err)
			}
		}
	}
	// Host names with dots are node names too: they become one token.
	if got, err := SubjectHeartbeat("edge-1.site.example"); err != nil || got != "skiff.heartbeat.edge-1_site_example" {
		t.Errorf("dotted node name: %q, %v", got, err)
	}
	if n := NodeFromToken(NodeToken("edge-1.site.example")); n != "edge-1.site.example" {
		t.Errorf("round trip: %q", n)
	}
	if err := ValidToken("worker-7_x"); err != nil {
		t.Errorf("ValidToken(worker-7_x) = %v", err)
	}
	if n, ok := HeartbeatNode("skiff.heartbeat.edge-1_site_example"); !ok || n != "edge-1.site.example" {
		t.Errorf("HeartbeatNode = %q, %v", n, ok)
	}
	if n, ok := HeartbeatNode("skiff.node.x.sync"); ok {
		t.Errorf("HeartbeatNode of a sync subject = %q", n)
	}
	if n, ok := UsageNode("skiff.node.edge-1_site_example.usage"); !ok || n != "edge-1.site.example" {
		t.Errorf("UsageNode = %q, %v", n, ok)
	}
	for _, s := range []string{"skiff.node.x.sync", "skiff.node.a.b.usage", "skiff.heartbeat.x", "skiff.node..usage"} {
		if n, ok := UsageNode(s); ok {
			t.Errorf("UsageNode(%q) = %q", s, n)
		}
	}
}

// Each wildcard matches its per-node subject, for any node, and no other
// subject of the table.
func TestSubjectWildcards(t *testing.T) {
	perNode := map[string]func(string) (string, error){
		SubjectNodeSyncAny:    SubjectNodeSync,
		SubjectNodeStatusAny:  SubjectNodeStatus,
		SubjectNodeObjectsAny: SubjectNodeObjects,
		SubjectHeartbeatAny:   SubjectHeartbeat,
		SubjectNodeUsageAny:   SubjectNodeUsage,
	}
	all := []func(string) (string, error){SubjectNodePods, SubjectNodeSync, SubjectNodeStatus, SubjectNodeObjects,
		SubjectNodeStreams, SubjectHeartbeat, SubjectNodeUsage}
	for wildcard, own := range perNode {
		want, _ := own("edge-1.site.example")
		for _, f := range all {
			s, err := f("edge-1.site.example")
			if err != nil {
				t.Fatal(err)
			}
			if got := subjectMatches(wildcard, s); got != (s == want) {
				t.Errorf("%s matches %s: %v", wildcard, s, got)
			}
		}
	}
}

// subjectMatches is NATS' subject matching for '*' (no '>'), so the table
// is checked without a server.
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	if len(p) != len(s) {
		return false
	}
	for i := range p {
		if p[i] != "*" && p[i] != s[i] {
			return false
		}
	}
	return true
}
