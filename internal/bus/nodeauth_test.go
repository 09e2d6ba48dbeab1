package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// testNodes is a Config.Nodes over a fixed table: node name → credential,
// each node allowed its own objects requests and heartbeats, its own pod
// events, and its own inbox.
func testNodes(creds map[string]string) NodeAuthenticator {
	return func(node, credential string) (*Permissions, error) {
		if want, ok := creds[node]; !ok || want != credential {
			return nil, errors.New("bad credential")
		}
		objects, _ := SubjectNodeObjects(node)
		hb, _ := SubjectHeartbeat(node)
		pods, _ := SubjectNodePods(node)
		inbox, _ := NodeInboxSubjects(node)
		cpInbox, _ := ControlPlaneInboxSubjects(node)
		return &Permissions{Publish: []string{objects, hb, cpInbox}, Subscribe: []string{pods, inbox}}, nil
	}
}

func dialNode(t *testing.T, s *Server, node, cred string) (*Conn, error) {
	t.Helper()
	c, err := DialNode(testCtx(t), s.ClientURL(), node, cred, "node-"+node, testTLS.client, nats.NoReconnect())
	if err == nil {
		t.Cleanup(c.Close)
	}
	return c, err
}

// With Config.Nodes every node connects as itself and may use its own
// subjects only: another node's requests, pod events, heartbeats and
// replies are refused, and so are wrong credentials and the shared node
// identity.
func TestNodeOwnIdentity(t *testing.T) {
	s := start(t, Config{Name: "nodes", Listen: "127.0.0.1:0", Token: "cluster-token", TLS: testTLS.server,
		Nodes: testNodes(map[string]string{"node-a": "cred-a", "node-b.example": "cred-b"})})
	ctx := testCtx(t)
	cp := inProc(t, s, "control-plane")

	// The control plane answers every node's objects requests with the
	// node the subject names, as the node server does.
	if _, err := ServeNode(ctx, cp, SubjectNodeObjectsAny, "", func(_ context.Context, node string, _ event) (string, error) {
		return "secret of " + node, nil
	}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 16)
	sub, err := Subscribe(ctx, cp, ">", func(_ context.Context, subject string, _ event) { got <- subject })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	if err := cp.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// Refused credentials: wrong password, another node's password, the
	// cluster token as the shared identity, a token as a node.
	for _, c := range []struct{ user, pass string }{
		{"node-a", "cred-b"}, {"node-a", "wrong"}, {"node-c", "cred-a"}, {NodeUser, "cluster-token"},
		{"node-a", ""}, {controlPlaneUser, s.cpSecret},
	} {
		nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(c.user, c.pass), nats.Secure(testTLS.client),
			nats.NoReconnect(), nats.Timeout(wait))
		if err == nil {
			nc.Close()
			t.Errorf("%s with password %q connected", c.user, c.pass)
		} else if !errors.Is(authError(err), ErrUnauthorized) {
			t.Errorf("%s/%q: got %v, want an authorization error", c.user, c.pass, err)
		}
	}

	a, err := dialNode(t, s, "node-a", "cred-a")
	if err != nil {
		t.Fatal(err)
	}
	// Allowed: its own objects request, answered through its own inbox.
	subjA, _ := SubjectNodeObjects("node-a")
	if resp, err := Request[event, string](ctx, a, subjA, event{}); err != nil || resp != "secret of node-a" {
		t.Fatalf("own request = %q, %v", resp, err)
	}
	if violation(t, a) {
		t.Fatalf("allowed traffic refused: %v", a.NATS().LastError())
	}

	// A forged request: node-a asks on node-b's subject. The bus drops it
	// (a permissions violation for node-a), so nobody answers.
	subjB, _ := SubjectNodeObjects("node-b.example")
	forged, err := dialNode(t, s, "node-a", "cred-a")
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	resp, err := Request[event, string](rctx, forged, subjB, event{})
	cancel()
	if err == nil || strings.Contains(resp, "node-b") {
		t.Fatalf("node-a's request on %s = %q, %v; want no answer", subjB, resp, err)
	}
	if !violation(t, forged) {
		t.Errorf("no permissions violation for node-a publishing to %s", subjB)
	}

	// Refused publishes, each on a fresh connection (LastError sticks).
	hbB, _ := SubjectHeartbeat("node-b.example")
	for _, subject := range []string{hbB, subjB, "_INBOX_node-b_example.x", "$JS.API.INFO", "skiff.nodes.register.node-b_example"} {
		c, err := dialNode(t, s, "node-a", "cred-a")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.NATS().Publish(subject, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if !violation(t, c) {
			t.Errorf("node-a published to %s", subject)
		}
	}
	// Refused subscriptions: another node's pods and inbox, everyone's
	// inboxes, everything.
	podsB, _ := SubjectNodePods("node-b.example")
	for _, subject := range []string{podsB, SubjectNodePodsAny, InboxSubjects, "_INBOX_node-b_example.>", "_INBOX_*.>", ">"} {
		c, err := dialNode(t, s, "node-a", "cred-a")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.NATS().SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
		if !violation(t, c) {
			t.Errorf("node-a subscribed to %s", subject)
		}
	}
	// Nothing refused reached the control plane.
	if err := cp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for len(got) > 0 {
		if subject := <-got; subject != subjA && !strings.HasPrefix(subject, "_INBOX_node-a.") {
			t.Errorf("control plane received %q from node-a", subject)
		}
	}

	// The control plane asks a node on the node's subject with the answer
	// to one of its inboxes for that node (RequestNode), which is all the
	// node may write to besides its own subjects.
	b, err := s.ConnectNodeAs(ctx, "node-b-inproc", "node-b.example", "cred-b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// In process too, a wrong credential gets nothing, nor does the shared
	// identity.
	if bad, err := s.ConnectNodeAs(ctx, "node-b-bad", "node-b.example", "cred-a"); !errors.Is(err, ErrUnauthorized) {
		if err == nil {
			bad.Close()
		}
		t.Errorf("in-process connect as node-b with node-a's credential: %v, want ErrUnauthorized", err)
	}
	if bad, err := s.ConnectNode(ctx, "shared"); !errors.Is(err, ErrUnauthorized) {
		if err == nil {
			bad.Close()
		}
		t.Errorf("in-process connect as the shared node identity: %v, want ErrUnauthorized", err)
	}
	if _, err := Serve(ctx, b, podsB, "", add); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	inbox, err := ControlPlaneInbox("node-b.example")
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := RequestNode[addReq, addResp](ctx, cp, podsB, inbox, addReq{A: 2, B: 3}); err != nil || resp.Sum != 5 {
		t.Fatalf("RequestNode = %+v, %v", resp, err)
	}
	if violation(t, b) {
		t.Fatalf("node-b's answer refused: %v", b.NATS().LastError())
	}
	// An answer to the usual "_INBOX." reply is refused: node-b may not
	// write there.
	rctx, cancel = context.WithTimeout(ctx, time.Second)
	if _, err := Request[addReq, addResp](rctx, cp, podsB, addReq{A: 1}); err == nil {
		t.Error("node-b answered on the control plane's _INBOX.")
	}
	cancel()
	if !violation(t, b) {
		t.Error("no violation for node-b answering on _INBOX.")
	}
	// Nobody serving: ErrNoResponders (once the control plane's own ">"
	// subscription, which would receive the request, is gone).
	sub.Stop()
	if err := cp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	podsA, _ := SubjectNodePods("node-a")
	inboxA, _ := ControlPlaneInbox("node-a")
	rctx, cancel = context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if _, err := RequestNode[addReq, addResp](rctx, cp, podsA, inboxA, addReq{}); !errors.Is(err, ErrNoResponders) {
		t.Errorf("RequestNode with nobody serving: %v, want ErrNoResponders", err)
	}
}

// ServeNode hands the handler the node its subject names, not a name from
// the payload, and refuses subjects that name none.
func TestServeNodeSubject(t *testing.T) {
	s := start(t, Config{Name: "serve-node"})
	cp := inProc(t, s, "control-plane")
	ctx := testCtx(t)
	if _, err := ServeNode(ctx, cp, "skiff.>", "", func(_ context.Context, node string, e event) (string, error) {
		return fmt.Sprintf("%s asked for %s", node, e.Node), nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := cp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for subject, want := range map[string]string{
		"skiff.node.a_b.objects":    "a.b asked for x",
		"skiff.heartbeat.n1":        "n1 asked for x",
		"skiff.nodes.register.n2":   "n2 asked for x",
		"skiff.node.a*.objects":     "",
		"skiff.feed.list":           "",
		"skiff.nodes.register.":     "",
		"skiff.node.nodots.objects": "nodots asked for x",
	} {
		got, err := Request[event, string](ctx, cp, subject, event{Node: "x"})
		if want == "" {
			if err == nil {
				t.Errorf("%s answered %q, want an error", subject, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", subject, got, err, want)
		}
	}
}
