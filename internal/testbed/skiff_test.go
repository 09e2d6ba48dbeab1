package testbed_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffhq/skiff/internal/testbed"
	"github.com/skiffhq/skiff/internal/wasmbuild"
)

const (
	apiPort    = "6443"
	readyLine  = `msg="engine ready"`
	workerLine = `msg="worker ready"`
	// startTimeout bounds a process's start-up (elections and a Wasm
	// compile on a shared 2-core machine).
	startTimeout = 120 * time.Second
)

// server is a `skiff server` process on a bed host.
type server struct {
	bed  *testbed.Bed
	proc *testbed.Proc
	host *testbed.Host
	dir  string
	api  string // HOST:PORT

	mu      sync.Mutex
	metrics kubernetes.Interface
}

// serverArgs are a server's flags on the bed: the API on the host's bed
// address (the bus then listens there too), loopback pod and Service ranges
// (each host has its own loopback), no cluster DNS (no test here needs it).
func serverArgs(h *testbed.Host, name, dir string, extra ...string) []string {
	return append([]string{"server", "--data-dir", dir, "--node-name", name,
		"--api-listen", net.JoinHostPort(h.Addr.String(), apiPort), "--image-hosts", "loopback",
		"--cluster-pod-cidr", "127.73.0.0/16", "--service-cidr", "127.74.0.0/16", "--no-cluster-dns"}, extra...)
}

func startServer(t *testing.T, bed *testbed.Bed, h *testbed.Host, name string, extra ...string) *server {
	t.Helper()
	skipShort(t)
	dir := filepath.Join(t.TempDir(), name)
	ctx, cancel := ctxT(startTimeout)
	defer cancel()
	p, err := h.Start(ctx, name, readyLine, testbed.Skiff(t), serverArgs(h, name, dir, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &server{bed: bed, proc: p, host: h, dir: dir, api: net.JoinHostPort(h.Addr.String(), apiPort)}
}

// client is a clientset for the server's API, from the server's own
// kubeconfig, dialling from the hub namespace, with a per-request timeout.
func (s *server) client(t *testing.T, timeout time.Duration) (*kubernetes.Clientset, *rest.Config) {
	t.Helper()
	cfg, err := s.bed.RestConfig(filepath.Join(s.dir, "kubeconfig.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = timeout
	cfg.QPS, cfg.Burst = -1, 0 // no client-side throttling: the test bounds its own loops
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, cfg
}

// importModule builds an example as a Wasm module and puts it into the
// cluster's embedded registry with `skiff image import`, run in the hub
// namespace against the server's kubeconfig.
func importModule(t *testing.T, s *server, pkg, nameTag string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "module.wasm")
	if err := os.WriteFile(file, wasmbuild.Build(t, pkg, false), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := s.bed.Command(ctx, testbed.Skiff(t), "image", "import", "--kubeconfig", filepath.Join(s.dir, "kubeconfig.yaml"), file, nameTag).CombinedOutput()
	if err != nil {
		t.Fatalf("skiff image import %s: %v\n%s", nameTag, err, out)
	}
}

// hasFlag says whether `skiff CMD --help` lists the flag: tests that need a
// flag another change adds run when it is there and skip saying so before.
var helpCache sync.Map

func hasFlag(t *testing.T, cmd, flag string) bool {
	t.Helper()
	v, ok := helpCache.Load(cmd)
	if !ok {
		bin := testbed.Skiff(t) // built before the help's own time bound starts
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := execCommand(ctx, bin, cmd, "--help")
		if err != nil {
			t.Fatalf("skiff %s --help: %v\n%s", cmd, err, out)
		}
		helpCache.Store(cmd, out)
		v = out
	}
	return strings.Contains(v.(string), "--"+flag+" ")
}

// nodeReady is the node's Ready condition status ("" if it has none).
func nodeReady(ctx context.Context, cs kubernetes.Interface, name string) (corev1.ConditionStatus, error) {
	n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status, nil
		}
	}
	return "", nil
}

// poll calls fn every interval until it returns nil, at most until timeout;
// it returns fn's last error.
func poll(timeout, interval time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

// restart starts a stopped server again on its data directory, waiting
// (bounded) until it is ready.
func (s *server) restart() error {
	ctx, cancel := ctxT(startTimeout)
	defer cancel()
	return s.proc.Restart(ctx, readyLine)
}

// skipShort skips the tests that run skiff processes on the bed in -short
// mode, before anything is built.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skiff processes on the test bed take minutes; skipped in -short mode")
	}
}

func ctxT(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func execCommand(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// metricsClient is one clientset per server for the tests' frequent small
// requests (who leads), so polling opens no new connections each time.
func (s *server) metricsClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.metrics == nil {
		s.metrics, _ = s.client(t, 2*time.Second)
	}
	return s.metrics
}
