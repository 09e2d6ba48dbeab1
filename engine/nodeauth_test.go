package engine

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/join"
	"github.com/skiffhq/skiff/internal/node/protocol"
	"github.com/skiffhq/skiff/internal/nodeauth"
	"github.com/skiffhq/skiff/internal/testutil"
)

// The node authorizer over the bus, with the real bus and node server: a
// node that joined with its own credential reads its own pods' Secret, and
// cannot get another node's by asking on that node's subject (the bus
// refuses it), by naming the other node in its own request (the node server
// refuses it), by subscribing to the other node's subjects or to everyone's
// inboxes, or by connecting with the wrong credential. The join endpoint
// hands a node's credential again only to that node.
func TestNodeCannotReadAnotherNodesSecret(t *testing.T) {
	ctx := context.Background()
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "auth-cp", APIListen: "127.128.0.1:0", BusListen: "127.128.0.1:0",
		ServiceCIDR: "127.128.16.0/20", ClusterPodCIDR: "127.128.128.0/17", DisableServiceProxy: true, DisableClusterDNS: true})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	// Each node's pod uses its own Secret; neither node runs (no agent),
	// which does not matter to the node authorizer.
	for _, n := range []string{"a", "b"} {
		if _, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "secret-" + n},
			Data: map[string][]byte{"k": []byte("value of " + n)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pod-" + n},
			Spec: corev1.PodSpec{NodeName: "node-" + n, Containers: []corev1.Container{{Name: "c", Image: "127.0.0.1:9/x:1",
				Env: []corev1.EnvVar{{Name: "K", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "secret-" + n}, Key: "k"}}}}}}}},
			metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	apiURL, err := url.Parse(e.api.URL())
	if err != nil {
		t.Fatal(err)
	}
	info, err := join.Discover(ctx, apiURL.Host, e.token, e.busCA)
	if err != nil {
		t.Fatal(err)
	}
	tlsConf, err := info.TLSConfig(e.busCA)
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]string{}
	for _, n := range []string{"node-a", "node-b"} {
		resp, err := join.RequestCredential(ctx, apiURL.Host, e.token, e.busCA, join.CredentialRequest{Node: n})
		if err != nil {
			t.Fatal(err)
		}
		creds[n] = resp.Credential
	}
	if creds["node-a"] == creds["node-b"] {
		t.Fatal("two nodes got the same credential")
	}
	dialA := func() *bus.Conn {
		t.Helper()
		c, err := bus.DialNode(ctx, info.URL, "node-a", creds["node-a"], "node-a", tlsConf, nats.NoReconnect())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	violation := func(c *bus.Conn) bool {
		t.Helper()
		if err := c.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		return errors.Is(c.NATS().LastError(), nats.ErrPermissionViolation)
	}
	ask := func(c *bus.Conn, subjectNode, payloadNode, name string) (protocol.ObjectResponse, error) {
		subject, err := bus.SubjectNodeObjects(subjectNode)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return bus.Request[protocol.ObjectRequest, protocol.ObjectResponse](rctx, c, subject,
			protocol.ObjectRequest{Node: payloadNode, Kind: "Secret", Namespace: "default", Name: name})
	}

	a := dialA()
	// Control: node-a reads its own pod's Secret (once the node server's
	// cache has the pod).
	testutil.Eventually(t, 10*time.Second, func() error {
		resp, err := ask(a, "node-a", "node-a", "secret-a")
		if err != nil {
			return err
		}
		if resp.Secret == nil || string(resp.Secret.Data["k"]) != "value of a" {
			t.Fatalf("node-a got %+v", resp)
		}
		return nil
	})
	if violation(a) {
		t.Fatalf("node-a's own request refused: %v", a.NATS().LastError())
	}

	// The forged request: node-a asks on node-b's subject for node-b's
	// Secret. The bus refuses the publish; nothing answers.
	forger := dialA()
	if resp, err := ask(forger, "node-b", "node-b", "secret-b"); err == nil || resp.Secret != nil {
		t.Fatalf("node-a's request on node-b's subject answered %+v, %v", resp, err)
	}
	if !violation(forger) {
		t.Error("the bus did not refuse node-a's publish on node-b's subject")
	}
	// On its own subject, naming node-b: the node server refuses.
	if resp, err := ask(a, "node-a", "node-b", "secret-b"); err == nil || resp.Secret != nil ||
		!strings.Contains(err.Error(), "may not") {
		t.Errorf("node-a naming node-b got %+v, %v", resp, err)
	}
	// Its own name, node-b's Secret: no pod of node-a uses it.
	if resp, err := ask(a, "node-a", "node-a", "secret-b"); err == nil || resp.Secret != nil {
		t.Errorf("node-a read node-b's Secret: %+v, %v", resp, err)
	}

	// Subscriptions to node-b's subjects or to the inboxes of others, and
	// node-b's heartbeat: refused.
	podsB, _ := bus.SubjectNodePods("node-b")
	streamsB, _ := bus.SubjectNodeStreams("node-b")
	for _, subject := range []string{podsB, streamsB, bus.InboxSubjects, "_INBOX_node-b.>", ">"} {
		c := dialA()
		if _, err := c.NATS().SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
		if !violation(c) {
			t.Errorf("node-a subscribed to %s", subject)
		}
	}
	hbB, _ := bus.SubjectHeartbeat("node-b")
	regB, _ := bus.SubjectRegister("node-b")
	statusB, _ := bus.SubjectNodeStatus("node-b")
	// Nor may it write into the control plane's inboxes other than its
	// own sessions' (another node's stream frames), nor its replies.
	for _, subject := range []string{hbB, regB, statusB, "_INBOX.forged", "_CPINBOX_node-b.forged", "_INBOX_node-b.forged"} {
		c := dialA()
		if err := c.NATS().Publish(subject, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if !violation(c) {
			t.Errorf("node-a published to %s", subject)
		}
	}

	// No "allow responses" loophole: node-a sends itself a message on a
	// shared subject naming node-b's objects subject as its reply, then
	// "answers" it with a request for node-b's Secret. Refused.
	{
		c := dialA()
		loop, err := c.NATS().SubscribeSync("skiff.apps.default.loop")
		if err != nil {
			t.Fatal(err)
		}
		steal, err := c.NATS().SubscribeSync("_INBOX_node-a.steal")
		if err != nil {
			t.Fatal(err)
		}
		subjB, _ := bus.SubjectNodeObjects("node-b")
		if err := c.NATS().PublishRequest("skiff.apps.default.loop", subjB, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		m, err := loop.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		req := []byte(`{"node":"node-b","kind":"Secret","namespace":"default","name":"secret-b"}`)
		if err := c.NATS().PublishRequest(m.Reply, "_INBOX_node-a.steal", req); err != nil {
			t.Fatal(err)
		}
		if !violation(c) {
			t.Errorf("node-a published to %s as the reply of its own message", m.Reply)
		}
		if got, err := steal.NextMsg(2 * time.Second); err == nil {
			t.Errorf("node-a received %q for node-b's objects", got.Data)
		}
	}

	// Wrong credentials are refused at connect, and so is the cluster
	// token as the old shared node identity.
	for _, c := range []struct{ user, pass string }{
		{"node-b", creds["node-a"]}, {"node-a", "sknc1_forged"}, {bus.NodeUser, e.token}, {"node-a", e.token},
	} {
		conn, err := bus.DialNode(ctx, info.URL, c.user, c.pass, "bad", tlsConf, nats.NoReconnect())
		if c.user == bus.NodeUser {
			conn, err = bus.Dial(ctx, info.URL, c.pass, "bad", tlsConf, nats.NoReconnect())
		}
		if err == nil {
			conn.Close()
			t.Errorf("%s connected with a wrong credential", c.user)
		} else if !errors.Is(err, bus.ErrUnauthorized) {
			t.Errorf("%s: %v, want ErrUnauthorized", c.user, err)
		}
	}

	// Once node-a is a Node, the token alone no longer gets its
	// credential; its current credential does, with a certificate for its
	// own key.
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := join.RequestCredential(ctx, apiURL.Host, e.token, e.busCA, join.CredentialRequest{Node: "node-a"}); !errors.Is(err, join.ErrCredentialRefused) {
		t.Errorf("credential of an existing node for the token alone: %v, want ErrCredentialRefused", err)
	}
	if _, err := join.RequestCredential(ctx, apiURL.Host, e.token, e.busCA,
		join.CredentialRequest{Node: "node-a", Credential: creds["node-b"]}); !errors.Is(err, join.ErrCredentialRefused) {
		t.Errorf("node-a's credential for node-b's: %v, want ErrCredentialRefused", err)
	}
	dir := t.TempDir()
	csr, err := nodeauth.CertificateRequest(dir, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := join.RequestCredential(ctx, apiURL.Host, e.token, e.busCA,
		join.CredentialRequest{Node: "node-a", Credential: creds["node-a"], CSR: string(csr)})
	if err != nil || resp.Credential != creds["node-a"] {
		t.Fatalf("renewal with the current credential: %+v, %v", resp, err)
	}
	block, _ := pem.Decode([]byte(resp.Certificate))
	if block == nil {
		t.Fatalf("no certificate in %q", resp.Certificate)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(e.busCA)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("node certificate does not chain to the cluster CA: %v", err)
	}
	if cert.Subject.CommonName != "system:node:node-a" || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != "system:nodes" {
		t.Errorf("node certificate subject %v", cert.Subject)
	}
	// Bad input gets a clear refusal, not a credential.
	for _, req := range []join.CredentialRequest{{Node: "Not_A_Name"}, {Node: "node-c", CSR: "garbage"}} {
		if _, err := join.RequestCredential(ctx, apiURL.Host, e.token, e.busCA, req); err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("request %+v: %v, want 400 Bad Request", req, err)
		}
	}
	if _, err := join.RequestCredential(ctx, apiURL.Host, "wrong-token", e.busCA, join.CredentialRequest{Node: "node-c"}); err == nil {
		t.Error("a wrong token got a credential")
	}
}

// A worker keeps the identity it got at join in its data directory: it
// restarts with it, while another data directory cannot take over its name
// with the cluster token alone.
func TestWorkerKeepsItsIdentity(t *testing.T) {
	ctx := context.Background()
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "id-cp", APIListen: "127.128.0.2:0", BusListen: "127.128.0.2:0",
		ServiceCIDR: "127.128.32.0/20", ClusterPodCIDR: "127.128.128.0/17", DisableServiceProxy: true, DisableClusterDNS: true})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	apiURL, err := url.Parse(e.api.URL())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := WorkerConfig{Server: apiURL.Host, Token: e.joinToken, DataDir: dir, NodeName: "id-edge", DisableClusterDNS: true,
		Logger: testutil.Logger(t)}
	nodeReady := func() {
		t.Helper()
		testutil.Eventually(t, moreWait, func() error {
			n, err := cs.CoreV1().Nodes().Get(ctx, "id-edge", metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return nil
				}
			}
			return errors.New("id-edge is not Ready")
		})
	}
	w, err := StartWorker(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	nodeReady()
	id, err := nodeauth.Load(filepath.Join(dir, agentSubdir, identitySubdir))
	if err != nil || id.Node != "id-edge" || e.nodeAuth.issuer.Verify("id-edge", id.Credential) != nil || len(id.CertPEM) == 0 {
		t.Fatalf("kept identity %+v, %v", id, err)
	}
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// Another directory, same name: refused before it reaches the bus.
	other := cfg
	other.DataDir = t.TempDir()
	if w2, err := StartWorker(ctx, other); !errors.Is(err, join.ErrCredentialRefused) {
		if err == nil {
			w2.Stop(ctx)
		}
		t.Fatalf("a second directory joined as id-edge: %v, want ErrCredentialRefused", err)
	}

	// The first directory restarts with what it kept.
	w, err = StartWorker(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop(context.Background()) })
	nodeReady()
}
