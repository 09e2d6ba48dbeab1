package engine

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/rpc"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/join"
	"github.com/skiffhq/skiff/internal/testutil"
)

// probeTimeout bounds each network step of a probe.
const probeTimeout = 2 * time.Second

// publicPaths are what the API answers without a token, as Kubernetes'
// system:public-info-viewer role allows anonymous users: the version and
// the health checks (GET only). Everything else must answer 401.
var publicPaths = []string{"/version", "/healthz", "/livez", "/readyz"}

// TestNoUnauthenticatedPort finds every TCP port a running server listens on
// (a bus listener included) and tries each as a client with no credentials:
// NATS in clear and over TLS, HTTP in clear and over TLS, and raft's
// forwarding net/rpc. No write and no read may succeed; the API may answer
// only its public information. Control checks show that the same probes do
// succeed with credentials, so the test cannot pass by probing nothing.
func TestNoUnauthenticatedPort(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skipf("no /proc/net/tcp to list listening sockets with: %v", err)
	}
	before := listeningSockets(t)
	// A single server opens no raft port by default; RaftBind asks for one
	// (mutual TLS), so the probe meets every listener an engine can have.
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "ports", APIListen: "127.0.0.1:0", BusListen: "127.0.0.1:0",
		RaftBind:    "127.0.0.1:0",
		ServiceCIDR: "127.91.0.0/16", ClusterPodCIDR: "127.90.0.0/16", Logger: testutil.Logger(t)})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	// Every listener is open once the node is Ready: its agent and Service
	// proxy have started.
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		n, err := cs.CoreV1().Nodes().Get(ctx, "ports", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errors.New("node not Ready yet")
	})

	var listeners []string
	for inode, addr := range listeningSockets(t) {
		if _, ok := before[inode]; !ok {
			listeners = append(listeners, addr)
		}
	}
	slices.Sort(listeners)
	t.Logf("the server listens on %v", listeners)

	apiURL, err := url.Parse(e.api.URL())
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := apiURL.Host
	busAddr := strings.TrimPrefix(e.bus.ClientURL(), "tls://")
	raftAddr := e.testStore().Addr()
	for name, addr := range map[string]string{"API": apiAddr, "bus": busAddr, "raft": raftAddr} {
		if !slices.Contains(listeners, addr) {
			t.Fatalf("the %s's address %s is not among the listeners found, %v: the listing is broken", name, addr, listeners)
		}
	}
	token := e.token

	// canary sees what reaches the probes' subjects: an unauthenticated
	// publish must never arrive. Its channel is filled by nats.go's read
	// loop, so after a Flush everything published before is in it.
	canary, err := e.testBus().Connect(ctx, "probe-canary")
	if err != nil {
		t.Fatal(err)
	}
	defer canary.Close()
	arrived := make(chan *nats.Msg, 100)
	for _, subject := range []string{"skiff.probe.>", "probe.>", "skiff.heartbeat.probe-control"} {
		if _, err := canary.NATS().ChanSubscribe(subject, arrived); err != nil {
			t.Fatal(err)
		}
	}
	if err := canary.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("control", func(t *testing.T) {
		// With credentials, the same probes get through: the node identity
		// on the bus (it may publish a heartbeat, which the canary sees),
		// the admin token on the API.
		info, err := join.Discover(ctx, apiAddr, token, e.busCA)
		if err != nil {
			t.Fatal(err)
		}
		tlsConf, err := info.TLSConfig(nil)
		if err != nil {
			t.Fatal(err)
		}
		cred := e.nodeAuth.issuer.Credential("probe-control") // a node's own identity
		if got := probeNATS(busAddr, nats.Secure(tlsConf), nats.UserInfo("probe-control", cred)); len(got) == 0 {
			t.Error("the NATS probe with the node's credentials got nothing through")
		}
		if err := canary.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-arrived:
			if m.Subject != "skiff.heartbeat.probe-control" {
				t.Errorf("canary got %q", m.Subject)
			}
		default:
			t.Error("the canary did not see the credentialled probe's publish")
		}
		if got := probeHTTP(t, apiAddr, true, token); !slices.ContainsFunc(got, func(s string) bool {
			return strings.Contains(s, "/api/v1/secrets")
		}) {
			t.Errorf("the HTTP probe with the admin token read nothing private: %v", got)
		}
		// Without a token the probe does reach the API: its public
		// information answers.
		client := &http.Client{Timeout: probeTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := client.Get("https://" + apiAddr + "/version")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /version without a token: %s, want the public version", resp.Status)
		}
		// The plain NATS probe notices a server that serves anyone.
		open, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoSigs: true, NoLog: true})
		if err != nil {
			t.Fatal(err)
		}
		open.Start()
		defer open.Shutdown()
		if !open.ReadyForConnections(10 * time.Second) {
			t.Fatal("open NATS server not ready")
		}
		if got := probeNATSPlain(open.Addr().String()); len(got) == 0 {
			t.Error("the plain NATS probe did not notice a server without authentication")
		}
	})

	role := map[string]string{apiAddr: "API", busAddr: "bus", raftAddr: "raft"}
	// The cluster DNS answers anyone on the kube-dns ClusterIP, as
	// Kubernetes' does: it holds nothing to write and tells only what
	// every pod may know (Service names and addresses). It is a listener
	// of its own kind, not a hole: the probes below would only wait for
	// its answers until they time out.
	dnsAddr := net.JoinHostPort(e.clusterDNS(), "53")
	for _, addr := range listeners {
		name := role[addr]
		if addr == dnsAddr {
			continue
		}
		if name == "" {
			name = "other"
		}
		t.Run(name+"_"+addr, func(t *testing.T) {
			host, _, _ := net.SplitHostPort(addr)
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() && !ip.IsUnspecified() {
				t.Fatalf("a test server listens on %s, not a loopback address", addr)
			}
			dial := dialable(addr)
			var got []string
			got = append(got, probeNATSPlain(dial)...)
			got = append(got, probeNATS(dial, nats.Secure(&tls.Config{InsecureSkipVerify: true}))...) // no credentials
			got = append(got, probeNATS(dial, nats.Secure(&tls.Config{InsecureSkipVerify: true}),
				nats.UserInfo(bus.NodeUser, "guessed"))...)
			// The cluster token no longer opens the bus: nodes connect as
			// themselves.
			got = append(got, probeNATS(dial, nats.Secure(&tls.Config{InsecureSkipVerify: true}),
				nats.UserInfo(bus.NodeUser, token))...)
			got = append(got, probeNATS(dial, nats.Secure(&tls.Config{InsecureSkipVerify: true}),
				nats.UserInfo("control-plane", ""))...)
			for _, https := range []bool{true, false} {
				got = append(got, probeHTTP(t, dial, https, "")...)
			}
			got = append(got, probeRPC(dial)...)
			for _, g := range got {
				t.Errorf("unauthenticated client on %s: %s", addr, g)
			}
			if addr == busAddr {
				if err := natsAuthRefused(dial); err != nil {
					t.Error(err)
				}
			}
		})
	}

	if err := canary.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for len(arrived) > 0 {
		t.Errorf("an unauthenticated publish reached the bus: %s", (<-arrived).Subject)
	}
}

// listeningSockets maps the inode of each TCP socket this process listens
// on to its local "host:port", from /proc/net/tcp{,6} and /proc/self/fd.
func listeningSockets(t *testing.T) map[string]string {
	t.Helper()
	mine := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			mine[strings.TrimSuffix(inode, "]")] = true
		}
	}
	out := map[string]string{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(file)
		if errors.Is(err, os.ErrNotExist) {
			continue // no IPv6
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) < 10 || f[3] != "0A" || !mine[f[9]] { // 0A: TCP_LISTEN
				continue
			}
			addr, err := procAddr(f[1])
			if err != nil {
				t.Fatalf("%s: %q: %v", file, line, err)
			}
			out[f[9]] = addr
		}
	}
	return out
}

// procAddr decodes /proc/net/tcp's "0100007F:1F90": the address in 32-bit
// words of host byte order (little endian here), the port in hex.
func procAddr(s string) (string, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return "", fmt.Errorf("no port in %q", s)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return "", fmt.Errorf("address %q", h)
	}
	for i := 0; i < len(raw); i += 4 {
		slices.Reverse(raw[i : i+4])
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return "", err
	}
	ip := net.IP(raw)
	if ip4 := ip.To4(); ip4 != nil && len(raw) == 16 && !ip.IsUnspecified() {
		ip = ip4 // an IPv4-mapped address on an IPv6 socket
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port))), nil
}

// dialable is addr with an unspecified host made loopback: tests send
// traffic to loopback only.
func dialable(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if ip.To4() != nil {
			return net.JoinHostPort("127.0.0.1", port)
		}
		return net.JoinHostPort("::1", port)
	}
	return addr
}

// probeNATSPlain speaks NATS in clear: CONNECT without credentials, a
// subscription, a publish and a PING. The server may greet (INFO); an
// answer to the PING, a delivered message or +OK means it served us.
func probeNATSPlain(addr string) []string {
	conn, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err != nil {
		return nil
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * probeTimeout))
	go func() {
		// Written without waiting for a greeting: a server that speaks
		// first and one that waits for the client are probed alike.
		io.WriteString(conn, "CONNECT {\"verbose\":true,\"pedantic\":false}\r\nSUB probe.> 1\r\nSUB skiff.> 2\r\nSUB _INBOX.> 3\r\n"+
			"PUB skiff.probe.plain 2\r\nhi\r\nPUB probe.plain 2\r\nhi\r\nPING\r\n")
	}()
	var got []string
	r := bufio.NewReader(io.LimitReader(conn, 1<<20))
	for {
		line, err := r.ReadString('\n')
		for _, served := range []string{"PONG", "MSG ", "+OK"} {
			if strings.HasPrefix(line, served) {
				got = append(got, fmt.Sprintf("plain NATS: the server answered %q", strings.TrimSpace(line)))
			}
		}
		if err != nil || strings.HasPrefix(line, "PONG") { // PONG answers the last command
			return got
		}
	}
}

// probeNATS connects with nats.go over TLS (opts say which certificate to
// trust and which credentials to give), then subscribes, publishes to the
// canary's subjects and flushes. Anything that works is reported.
func probeNATS(addr string, opts ...nats.Option) []string {
	opts = append(opts, nats.NoReconnect(), nats.Timeout(probeTimeout), nats.Name("probe"),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})) // refusals are read from LastError
	nc, err := nats.Connect("tls://"+addr, opts...)
	if err != nil {
		return nil
	}
	defer nc.Close()
	got := []string{"NATS: connected"}
	if _, err := nc.SubscribeSync("skiff.>"); err == nil {
		if nc.FlushTimeout(probeTimeout) == nil && !errors.Is(nc.LastError(), nats.ErrPermissionViolation) {
			got = append(got, "NATS: subscribed to skiff.>")
		}
	}
	for _, subject := range []string{"skiff.probe.tls", "skiff.heartbeat.probe-control"} {
		if nc.Publish(subject, []byte("{}")) == nil && nc.FlushTimeout(probeTimeout) == nil {
			got = append(got, "NATS: published to "+subject)
		}
	}
	return got
}

// natsAuthRefused checks that the bus refuses a TLS client without
// credentials because of the credentials: TLS alone gets nobody in.
func natsAuthRefused(addr string) error {
	nc, err := nats.Connect("tls://"+addr, nats.Secure(&tls.Config{InsecureSkipVerify: true}),
		nats.NoReconnect(), nats.Timeout(probeTimeout))
	if err == nil {
		nc.Close()
		return errors.New("bus: a TLS client without credentials connected")
	}
	if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		return fmt.Errorf("bus: a TLS client without credentials failed with %v, want an authorization error", err)
	}
	return nil
}

// probeHTTP tries reads and writes over HTTP (TLS when https), with token
// as the bearer token when it is not empty. It reports every request that
// was answered below 400, except GETs of publicPaths; on the API, anything
// else must be 401.
func probeHTTP(t *testing.T, addr string, https bool, token string) []string {
	scheme := "http://"
	if https {
		scheme = "https://"
	}
	client := &http.Client{Timeout: probeTimeout, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives: true,
	}}
	type request struct{ method, path, body string }
	var reqs []request
	for _, p := range append([]string{"/", "/api", "/api/v1/namespaces", "/api/v1/secrets", "/api/v1/nodes", "/apis",
		"/openapi/v3", "/metrics", "/v2/", "/v2/_catalog", join.BusInfoPath}, publicPaths...) {
		reqs = append(reqs, request{http.MethodGet, p, ""})
	}
	cm := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"probe"}}`
	reqs = append(reqs,
		request{http.MethodPost, "/api/v1/namespaces/default/configmaps", cm},
		request{http.MethodPut, "/api/v1/namespaces/default/configmaps/probe", cm},
		request{http.MethodDelete, "/api/v1/namespaces/kube-system", ""},
		request{http.MethodPost, "/v2/probe/blobs/uploads/", ""},
		request{http.MethodPost, "/version", "{}"},
	)
	var got []string
	for _, r := range reqs {
		req, err := http.NewRequest(r.method, scheme+addr+r.path, strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		if r.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			continue // not HTTP, or refused: nothing read or written
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		public := r.method == http.MethodGet && slices.Contains(publicPaths, r.path)
		switch {
		case resp.StatusCode < 400 && !public:
			got = append(got, fmt.Sprintf("HTTP: %s %s%s%s answered %s", r.method, scheme, addr, r.path, resp.Status))
		case token == "" && https && !public && resp.StatusCode != http.StatusUnauthorized:
			// An HTTPS server here is the API (or a proxy to it): it
			// answers 401 to anything not public, before looking further.
			got = append(got, fmt.Sprintf("HTTP: %s %s%s%s answered %s, not 401", r.method, scheme, addr, r.path, resp.Status))
		}
	}
	return got
}

// probeRPC speaks raft's forwarding protocol (the 0xF5 byte, then net/rpc)
// and asks for the current term: an answer means an unauthenticated peer
// reads from the store's consensus layer (and could write as easily).
func probeRPC(addr string) []string {
	conn, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err != nil {
		return nil
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := conn.Write([]byte{0xF5}); err != nil {
		return nil
	}
	c := rpc.NewClient(conn)
	defer c.Close()
	var term uint64
	call := c.Go("Skiff.Term", struct{}{}, &term, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		if call.Error == nil {
			return []string{fmt.Sprintf("net/rpc: Skiff.Term answered term %d", term)}
		}
	case <-time.After(probeTimeout):
	}
	return nil
}
