package bus

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// violation flushes c and reports whether the server refused something c
// sent since the last check (a permissions violation is answered
// asynchronously, before the flush's PONG).
func violation(t *testing.T, c *Conn) bool {
	t.Helper()
	if err := c.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return errors.Is(c.NATS().LastError(), nats.ErrPermissionViolation)
}

// The node identity, over the network, may use the engine's subjects and
// reply inboxes and nothing else: no JetStream, no system subjects, no other
// subjects.
func TestNodeDefaultPermissions(t *testing.T) {
	s := start(t, Config{Name: "perms", Listen: "127.0.0.1:0", Token: "node-secret", TLS: testTLS.server,
		JetStreamDir: t.TempDir()})
	cp := inProc(t, s, "control-plane")
	ctx := testCtx(t)

	got := make(chan string, 10)
	sub, err := Subscribe(ctx, cp, ">", func(_ context.Context, subject string, _ event) { got <- subject })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	if err := cp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := Serve(ctx, cp, "skiff.add", "", add); err != nil {
		t.Fatal(err)
	}

	node := dial(t, s.ClientURL(), "node-secret", "node", testTLS.client)
	// Allowed: an engine subject, and request/reply through an inbox.
	if err := Publish(ctx, node, "skiff.heartbeat.n1", event{N: 1}); err != nil {
		t.Fatal(err)
	}
	if subject := receive(t, got); subject != "skiff.heartbeat.n1" {
		t.Fatalf("control plane received %q, want skiff.heartbeat.n1", subject)
	}
	if resp, err := Request[addReq, addResp](ctx, node, "skiff.add", addReq{A: 1, B: 2}); err != nil || resp.Sum != 3 {
		t.Fatalf("Request = %+v, %v", resp, err)
	}
	if violation(t, node) {
		t.Fatalf("allowed traffic refused: %v", node.NATS().LastError())
	}

	// Refused publishes are dropped, and reported to the publisher; refused
	// subscriptions too. Each on a fresh connection: LastError sticks.
	for _, subject := range []string{"$JS.API.INFO", "$KV.skiff-registry.x", "$SYS.REQ.SERVER.PING", "other.subject"} {
		c := dial(t, s.ClientURL(), "node-secret", "node-pub", testTLS.client)
		if err := c.NATS().Publish(subject, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if !violation(t, c) {
			t.Errorf("node published to %s", subject)
		}
		c.Close()
	}
	for _, subject := range []string{">", "$SYS.>", "$JS.>", "other.>"} {
		c := dial(t, s.ClientURL(), "node-secret", "node-sub", testTLS.client)
		if _, err := c.NATS().SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
		if !violation(t, c) {
			t.Errorf("node subscribed to %s", subject)
		}
		c.Close()
	}
	// JetStream is the control plane's: a node cannot even ask about it.
	js, err := jetstream.New(node.NATS())
	if err != nil {
		t.Fatal(err)
	}
	jctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(jctx); err == nil {
		t.Error("node read JetStream account info")
	}
	// Nothing of the refused traffic reached the control plane.
	if err := cp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	refused := map[string]bool{"$JS.API.INFO": true, "$KV.skiff-registry.x": true, "$SYS.REQ.SERVER.PING": true, "other.subject": true}
	for len(got) > 0 {
		if subject := <-got; refused[subject] {
			t.Errorf("control plane received %q from a refused publish", subject)
		}
	}
	// Control: the control plane may use JetStream.
	cpJS, err := jetstream.New(cp.NATS())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cpJS.AccountInfo(ctx); err != nil {
		t.Errorf("control plane JetStream account info: %v", err)
	}
}

// Config.NodePermissions narrows the node identity, also in process
// (ConnectNode), while Connect keeps full permissions.
func TestNodeCustomPermissions(t *testing.T) {
	s := start(t, Config{Name: "narrow", NodePermissions: &Permissions{
		Publish:   []string{"skiff.up", InboxSubjects},
		Subscribe: []string{"skiff.down", InboxSubjects},
	}})
	node, err := s.ConnectNode(testCtx(t), "node")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Close)
	cp := inProc(t, s, "control-plane")
	nc := node.NATS()

	if err := nc.Publish("skiff.up", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.SubscribeSync("skiff.down"); err != nil {
		t.Fatal(err)
	}
	if violation(t, node) {
		t.Fatalf("allowed traffic refused: %v", nc.LastError())
	}
	if err := nc.Publish("skiff.down", nil); err != nil {
		t.Fatal(err)
	}
	if !violation(t, node) {
		t.Error("node published to skiff.down")
	}
	node2, err := s.ConnectNode(testCtx(t), "node2") // LastError sticks: a fresh connection
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node2.Close)
	if _, err := node2.NATS().SubscribeSync("skiff.up"); err != nil {
		t.Fatal(err)
	}
	if !violation(t, node2) {
		t.Error("node subscribed to skiff.up")
	}
	for _, subject := range []string{"skiff.down", "anything.else"} {
		if err := cp.NATS().Publish(subject, nil); err != nil {
			t.Fatal(err)
		}
	}
	if violation(t, cp) {
		t.Errorf("control plane refused: %v", cp.NATS().LastError())
	}
}

// The control-plane identity works only in process: its password would be
// refused over the network.
func TestControlPlaneIdentityIsInProcessOnly(t *testing.T) {
	s := start(t, Config{Name: "cp-only", Listen: "127.0.0.1:0", Token: "node-secret", TLS: testTLS.server})
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(controlPlaneUser, s.cpSecret), nats.Secure(testTLS.client),
		nats.NoReconnect(), nats.Timeout(wait))
	if err == nil {
		nc.Close()
		t.Fatal("the control-plane identity connected over the network")
	}
	if !errors.Is(authError(err), ErrUnauthorized) {
		t.Errorf("got %v, want an authorization error", err)
	}
}

// A client that does not upgrade to TLS gets the server's greeting and
// nothing else: not even its credentials are accepted in clear.
func TestPlainClientRefused(t *testing.T) {
	s := start(t, Config{Name: "plain", Listen: "127.0.0.1:0", Token: "node-secret", TLS: testTLS.server})
	addr := strings.TrimPrefix(s.ClientURL(), "tls://")
	conn, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wait))
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(info, "INFO ") || !strings.Contains(info, `"tls_required":true`) {
		t.Fatalf("greeting %q, %v; want an INFO requiring TLS", info, err)
	}
	if _, err := conn.Write([]byte("CONNECT {\"user\":\"node\",\"pass\":\"node-secret\",\"verbose\":false}\r\nSUB skiff.> 1\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	// The server expects a TLS handshake after its INFO, reads the CONNECT
	// as a broken one and hangs up.
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			lines = append(lines, strings.TrimSpace(line))
		}
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the server kept a plain client's connection open for %v", wait)
		}
		if err != nil {
			break
		}
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "PONG") || strings.HasPrefix(l, "MSG") || strings.HasPrefix(l, "+OK") {
			t.Fatalf("a plain client was served: %q", lines)
		}
	}
}
