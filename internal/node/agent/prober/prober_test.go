package prober

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// recorder is a Target that remembers what the probes told it.
type recorder struct {
	mu      sync.Mutex
	events  []string
	started []bool
	ready   []bool
	execs   [][]string
}

func (r *recorder) Event(_, reason, _ string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, reason)
}

func (r *recorder) Exec(_ context.Context, spec skiffrt.ContainerSpec) (skiffrt.ExitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.execs = append(r.execs, spec.Args)
	return skiffrt.ExitStatus{Code: 0}, nil
}

func (r *recorder) Started(ready bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = append(r.started, ready)
}

func (r *recorder) Ready(ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready = append(r.ready, ok)
}

// A startup probe (exec) gates an HTTP readiness probe that finds its port
// by name; a TCP liveness probe on a closed port asks for a restart.
func TestProbes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || r.URL.RawQuery != "deep=1" || r.Header.Get("User-Agent") != "kube-probe/1.32" {
			http.Error(w, "unexpected probe", http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	host, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	httpPort, _ := strconv.Atoi(port)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	c := &corev1.Container{
		Name:  "app",
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(httpPort)}},
		StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
			Exec: &corev1.ExecAction{Command: []string{"check", "--startup"}}}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
			HTTPGet: &corev1.HTTPGetAction{Path: "/healthz?deep=1", Port: intstr.FromString("http")}}},
		LivenessProbe: &corev1.Probe{FailureThreshold: 1, ProbeHandler: corev1.ProbeHandler{
			TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(closedPort))}}},
	}
	rec := &recorder{}
	kill := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	Start(ctx, &wg, c, skiffrt.ContainerSpec{PodIP: host, Args: []string{"app"}}, rec, kill)

	select {
	case kind := <-kill:
		if kind != "Liveness" {
			t.Errorf("restart asked by %s probe, want Liveness", kind)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a failing liveness probe asked for no restart")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec.mu.Lock()
		n := len(rec.ready)
		rec.mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.execs) == 0 || len(rec.execs[0]) != 2 || rec.execs[0][1] != "--startup" {
		t.Errorf("exec probes ran %v, want the startup command", rec.execs)
	}
	if len(rec.started) != 1 || rec.started[0] {
		t.Errorf("Started calls %v, want one, not ready (there is a readiness probe)", rec.started)
	}
	if len(rec.ready) == 0 || !rec.ready[0] {
		t.Errorf("Ready calls %v, want true first", rec.ready)
	}
	var killing, unhealthy bool
	for _, e := range rec.events {
		killing = killing || e == "Killing"
		unhealthy = unhealthy || e == "Unhealthy"
	}
	if !killing || !unhealthy {
		t.Errorf("events %v, want Unhealthy and Killing", rec.events)
	}
}

// A port name the container does not declare fails the probe with the
// kubelet's message.
func TestResolvePortUnknownName(t *testing.T) {
	pr := &prober{c: &corev1.Container{Name: "app"}}
	if _, err := pr.resolvePort(intstr.FromString("metrics")); err == nil || err.Error() != `couldn't find port "metrics" in container app` {
		t.Errorf("error %v, want the kubelet's", err)
	}
}
