package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/engine"
	"github.com/skiffhq/skiff/internal/testutil"
)

// These tests drive the proxy an engine runs, end to end: pods (whose
// kubelet the test plays) with real HTTP servers on 127.66.71.x, Services
// from this package's own range, requests to the cluster IPs and node
// ports.
const serviceCIDR = "127.70.0.0/16"

const testNode = "test-kubelet" // not the engine's node: its agent leaves the pods alone

const wait = 10 * time.Second

func startEngine(t *testing.T) (*engine.Engine, kubernetes.Interface) {
	t.Helper()
	e, err := engine.New(engine.Config{DataDir: t.TempDir(), NodeName: "proxy-test", APIListen: "127.0.0.1:0", ImageHosts: []string{"loopback"},
		ServiceCIDR: serviceCIDR, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(context.Background()) })
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	return e, cs
}

// serveHTTP runs an HTTP server on addr that answers every request with
// its name, until the test ends.
func serveHTTP(t *testing.T, addr, name string) (net.Listener, error) {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln, nil
}

// backendsOnOnePort starts HTTP servers on the given IPs, all on one port
// (a Service's numeric targetPort is the same for every pod), and returns
// the port.
func backendsOnOnePort(t *testing.T, ips ...string) int32 {
	t.Helper()
	for attempt := 0; attempt < 10; attempt++ {
		first, err := serveHTTP(t, ips[0]+":0", ips[0])
		if err != nil {
			t.Skipf("cannot listen on %s (loopback addresses beyond 127.0.0.1 unavailable): %v", ips[0], err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		ok := true
		for _, ip := range ips[1:] {
			if _, err := serveHTTP(t, net.JoinHostPort(ip, strconv.Itoa(port)), ip); err != nil {
				ok = false // the port is taken on that address: try another
				break
			}
		}
		if ok {
			return int32(port)
		}
		first.Close()
	}
	t.Fatal("no port free on every backend address")
	return 0
}

type pod struct {
	name  string
	ip    string
	ready bool
	ports map[string]int32 // named container ports
}

// createPod creates a pod bound to the test node and writes its status as
// a kubelet would.
func createPod(t *testing.T, cs kubernetes.Interface, labels map[string]string, p pod) {
	t.Helper()
	var ports []corev1.ContainerPort
	for name, n := range p.ports {
		ports = append(ports, corev1.ContainerPort{Name: name, ContainerPort: n})
	}
	_, err := cs.CoreV1().Pods("default").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Labels: labels},
		Spec: corev1.PodSpec{NodeName: testNode,
			Containers: []corev1.Container{{Name: "app", Image: "app.wasm", Ports: ports}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setReady(t, cs, p.name, p.ip, p.ready)
}

func setReady(t *testing.T, cs kubernetes.Interface, name, ip string, ready bool) {
	t.Helper()
	ctx := context.Background()
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		cur.Status.Phase = corev1.PodRunning
		cur.Status.PodIP = ip
		cur.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		cur.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
		_, err = cs.CoreV1().Pods("default").UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("pod %s status: conflicts", name)
}

func createService(t *testing.T, cs kubernetes.Interface, svc *corev1.Service) *corev1.Service {
	t.Helper()
	svc.Namespace = "default"
	out, err := cs.CoreV1().Services("default").Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// get makes one request on a new connection and returns the body.
func get(addr string) (string, error) {
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// spread makes n requests and counts the answers per backend.
func spread(addr string, n int) (map[string]int, error) {
	got := map[string]int{}
	for range n {
		body, err := get(addr)
		if err != nil {
			return got, err
		}
		got[body]++
	}
	return got, nil
}

// refused says whether a connection to addr is refused outright (nothing
// listens).
func refused(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s accepts connections", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: %v, want connection refused", addr, err)
	}
	return nil
}

func clusterAddr(svc *corev1.Service, port int32) string {
	return net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(port)))
}

// Connections to a cluster IP go round robin to the ready endpoints; a pod
// that stops being ready gets no more; with no ready endpoint the address
// refuses connections; deleting the Service closes its listener.
func TestClusterIPRoundRobin(t *testing.T) {
	_, cs := startEngine(t)
	ctx := context.Background()
	port := backendsOnOnePort(t, "127.66.71.1", "127.66.71.2")
	lbl := map[string]string{"app": "rr"}
	createPod(t, cs, lbl, pod{name: "rr-a", ip: "127.66.71.1", ready: true})
	createPod(t, cs, lbl, pod{name: "rr-b", ip: "127.66.71.2", ready: true})
	svc := createService(t, cs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "rr"},
		Spec: corev1.ServiceSpec{Selector: lbl, Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(port)}}}})
	addr := clusterAddr(svc, 8080)
	if !strings.HasPrefix(svc.Spec.ClusterIP, "127.70.") {
		t.Fatalf("cluster IP %s not from %s", svc.Spec.ClusterIP, serviceCIDR)
	}

	// Both endpoints in the proxy's view: then requests alternate exactly.
	testutil.Eventually(t, wait, func() error {
		got, err := spread(addr, 4)
		if err != nil {
			return err
		}
		if got["127.66.71.1"] == 0 || got["127.66.71.2"] == 0 {
			return fmt.Errorf("answers %v", got)
		}
		return nil
	})
	if got, err := spread(addr, 20); err != nil || got["127.66.71.1"] != 10 || got["127.66.71.2"] != 10 {
		t.Fatalf("20 requests spread %v (%v), want 10 each", got, err)
	}

	setReady(t, cs, "rr-b", "127.66.71.2", false)
	testutil.Eventually(t, wait, func() error {
		if got, err := spread(addr, 6); err != nil {
			return err
		} else if got["127.66.71.1"] != 6 {
			return fmt.Errorf("answers %v after rr-b stopped being ready", got)
		}
		return nil
	})

	setReady(t, cs, "rr-a", "127.66.71.1", false)
	testutil.Eventually(t, wait, func() error { return refused(addr) })

	setReady(t, cs, "rr-a", "127.66.71.1", true)
	testutil.Eventually(t, wait, func() error { _, err := get(addr); return err })
	if err := cs.CoreV1().Services("default").Delete(ctx, "rr", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() error { return refused(addr) })
}

// A NodePort Service answers on 127.0.0.1 at its node port, as well as on
// its cluster IP.
func TestNodePort(t *testing.T) {
	_, cs := startEngine(t)
	port := backendsOnOnePort(t, "127.66.71.11")
	lbl := map[string]string{"app": "np"}
	createPod(t, cs, lbl, pod{name: "np-a", ip: "127.66.71.11", ready: true})
	svc := createService(t, cs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "np"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: lbl,
			Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(port)}}}})
	nodePort := svc.Spec.Ports[0].NodePort
	if nodePort < 30000 || nodePort > 32767 {
		t.Fatalf("node port %d", nodePort)
	}
	for _, addr := range []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(int(nodePort))), clusterAddr(svc, 8080)} {
		testutil.Eventually(t, wait, func() error {
			body, err := get(addr)
			if err == nil && body != "127.66.71.11" {
				err = fmt.Errorf("answer %q", body)
			}
			return err
		})
	}
	// Turning it back into a ClusterIP Service closes the node port.
	cur, err := cs.CoreV1().Services("default").Get(context.Background(), "np", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Type = corev1.ServiceTypeClusterIP
	cur.Spec.Ports[0].NodePort = 0
	if _, err := cs.CoreV1().Services("default").Update(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() error { return refused(net.JoinHostPort("127.0.0.1", strconv.Itoa(int(nodePort)))) })
	if _, err := get(clusterAddr(svc, 8080)); err != nil {
		t.Fatalf("cluster IP after the type change: %v", err)
	}
}

// A named targetPort reaches each pod on its own containerPort of that
// name; a second Service port is listened on separately.
func TestNamedTargetPort(t *testing.T) {
	_, cs := startEngine(t)
	a, err := serveHTTP(t, "127.66.71.21:0", "a")
	if err != nil {
		t.Skipf("cannot listen on 127.66.71.21: %v", err)
	}
	b, err := serveHTTP(t, "127.66.71.22:0", "b")
	if err != nil {
		t.Fatal(err)
	}
	portOf := func(ln net.Listener) int32 { return int32(ln.Addr().(*net.TCPAddr).Port) }
	lbl := map[string]string{"app": "named"}
	createPod(t, cs, lbl, pod{name: "named-a", ip: "127.66.71.21", ready: true, ports: map[string]int32{"web": portOf(a)}})
	createPod(t, cs, lbl, pod{name: "named-b", ip: "127.66.71.22", ready: true, ports: map[string]int32{"web": portOf(b)}})
	svc := createService(t, cs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "named"},
		Spec: corev1.ServiceSpec{Selector: lbl, Ports: []corev1.ServicePort{
			{Name: "http", Port: 8080, TargetPort: intstr.FromString("web")},
			{Name: "alt", Port: 8081, TargetPort: intstr.FromString("web")},
		}}})
	for _, port := range []int32{8080, 8081} {
		testutil.Eventually(t, wait, func() error {
			got, err := spread(clusterAddr(svc, port), 4)
			if err != nil {
				return err
			}
			if got["a"] != 2 || got["b"] != 2 {
				return fmt.Errorf("port %d: answers %v", port, got)
			}
			return nil
		})
	}
}

// ClientIP session affinity sends every connection of a client to one
// endpoint, until that endpoint goes.
func TestSessionAffinity(t *testing.T) {
	_, cs := startEngine(t)
	ctx := context.Background()
	port := backendsOnOnePort(t, "127.66.71.31", "127.66.71.32")
	lbl := map[string]string{"app": "sticky"}
	createPod(t, cs, lbl, pod{name: "sticky-a", ip: "127.66.71.31", ready: true})
	createPod(t, cs, lbl, pod{name: "sticky-b", ip: "127.66.71.32", ready: true})
	svc := createService(t, cs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "sticky"},
		Spec: corev1.ServiceSpec{Selector: lbl, Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(port)}}}})
	addr := clusterAddr(svc, 8080)
	// First without affinity, until both endpoints answer: from then on a
	// run of answers from one endpoint can only be affinity's doing.
	testutil.Eventually(t, wait, func() error {
		if got, err := spread(addr, 4); err != nil {
			return err
		} else if len(got) != 2 {
			return fmt.Errorf("answers %v", got)
		}
		return nil
	})
	cur, err := cs.CoreV1().Services("default").Get(ctx, "sticky", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	if _, err := cs.CoreV1().Services("default").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var first string
	testutil.Eventually(t, wait, func() error {
		got, err := spread(addr, 10)
		if err != nil {
			return err
		}
		if len(got) != 1 {
			return fmt.Errorf("10 requests from one client went to %v, want one endpoint", got)
		}
		for first = range got {
		}
		return nil
	})
	// The affine endpoint stops being ready: the client moves, and sticks.
	name := map[string]string{"127.66.71.31": "sticky-a", "127.66.71.32": "sticky-b"}[first]
	setReady(t, cs, name, first, false)
	testutil.Eventually(t, wait, func() error {
		got, err := spread(addr, 10)
		if err != nil {
			return err
		}
		if len(got) != 1 || got[first] != 0 {
			return fmt.Errorf("after %s stopped being ready, answers %v", first, got)
		}
		return nil
	})
}

// Stopping the engine closes the proxy's listeners and its live
// connections.
func TestStopClosesConnections(t *testing.T) {
	e, cs := startEngine(t)
	// A backend that holds connections open and echoes.
	ln, err := net.Listen("tcp4", "127.66.71.41:0")
	if err != nil {
		t.Skipf("cannot listen on 127.66.71.41: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	lbl := map[string]string{"app": "echo"}
	createPod(t, cs, lbl, pod{name: "echo-a", ip: "127.66.71.41", ready: true})
	svc := createService(t, cs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: corev1.ServiceSpec{Selector: lbl,
			Ports: []corev1.ServicePort{{Port: 7000, TargetPort: intstr.FromInt32(int32(ln.Addr().(*net.TCPAddr).Port))}}}})
	addr := clusterAddr(svc, 7000)
	var conn net.Conn
	testutil.Eventually(t, wait, func() error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4)
		if _, err := c.Write([]byte("ping")); err == nil {
			_, err = io.ReadFull(c, buf)
		}
		if err != nil || string(buf) != "ping" {
			c.Close()
			return fmt.Errorf("echo through the proxy: %q %v", buf, err)
		}
		conn = c
		return nil
	})
	defer conn.Close()
	if err := e.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err) {
		t.Fatalf("live connection not closed by Stop: read %d, %v", n, err)
	}
	if err := refused(addr); err != nil {
		t.Fatal(err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// An endpoint sees the client's address, not the proxy's, when the client
// has a loopback address (a pod's in unprivileged mode): NetworkPolicy
// ingress rules name the client pod.
func TestEndpointSeesClientAddress(t *testing.T) {
	_, cs := startEngine(t)
	ln, err := net.Listen("tcp4", "127.66.73.1:0")
	if err != nil {
		t.Skipf("cannot listen on 127.66.73.1 (loopback addresses beyond 127.0.0.1 unavailable): %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		io.WriteString(w, host)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := int32(ln.Addr().(*net.TCPAddr).Port)
	lbl := map[string]string{"app": "src"}
	createPod(t, cs, lbl, pod{name: "src", ip: "127.66.73.1", ready: true})
	svc := createService(t, cs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "src"},
		Spec: corev1.ServiceSpec{Selector: lbl, Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(port)}}}})
	addr := clusterAddr(svc, 8080)

	// A client bound to a pod address, as a Wasm pod's sockets are.
	from := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.66.73.9")}}).DialContext}}
	testutil.Eventually(t, wait, func() error {
		resp, err := from.Get("http://" + addr + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if string(b) != "127.66.73.9" {
			return fmt.Errorf("endpoint saw the client at %s, want 127.66.73.9", b)
		}
		return nil
	})
}

// A client pod's egress NetworkPolicy decides which endpoints of a Service
// the engine's proxy sends it to: Kubernetes applies policy after the
// ClusterIP's translation, and the proxy is where it happens.
func TestEgressPolicyChoosesEndpoints(t *testing.T) {
	_, cs := startEngine(t)
	ctx := context.Background()
	port := backendsOnOnePort(t, "127.66.74.1", "127.66.74.2")
	createPod(t, cs, map[string]string{"app": "np", "role": "a"}, pod{name: "np-a", ip: "127.66.74.1", ready: true})
	createPod(t, cs, map[string]string{"app": "np", "role": "b"}, pod{name: "np-b", ip: "127.66.74.2", ready: true})
	createPod(t, cs, map[string]string{"role": "client"}, pod{name: "np-client", ip: "127.66.74.9", ready: true})
	svc := createService(t, cs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "np"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "np"}, Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(port)}}}})
	addr := clusterAddr(svc, 8080)
	from := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.66.74.9")}}).DialContext}}
	spreadFrom := func(n int) (map[string]int, error) {
		got := map[string]int{}
		for range n {
			resp, err := from.Get("http://" + addr + "/")
			if err != nil {
				return got, err
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return got, err
			}
			got[string(b)]++
		}
		return got, nil
	}
	testutil.Eventually(t, wait, func() error {
		got, err := spreadFrom(4)
		if err != nil {
			return err
		}
		if got["127.66.74.1"] == 0 || got["127.66.74.2"] == 0 {
			return fmt.Errorf("answers %v without a policy, want both endpoints", got)
		}
		return nil
	})

	nps := cs.NetworkingV1().NetworkPolicies("default")
	pol := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "client-to-a"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "client"}},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
			{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "a"}}}}}}}}
	pol, err := nps.Create(ctx, pol, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() error {
		got, err := spreadFrom(6)
		if err != nil {
			return err
		}
		if got["127.66.74.1"] != 6 {
			return fmt.Errorf("answers %v with egress to role=a only", got)
		}
		return nil
	})
	// The node itself is held to no policy.
	if got, err := spread(addr, 4); err != nil || got["127.66.74.2"] == 0 {
		t.Errorf("from the node: answers %v (%v), want both endpoints", got, err)
	}

	pol.Spec.Egress = nil // deny all egress
	if _, err := nps.Update(ctx, pol, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() error {
		if got, err := spreadFrom(1); err == nil {
			return fmt.Errorf("answered %v with all egress denied", got)
		}
		return nil
	})
}
