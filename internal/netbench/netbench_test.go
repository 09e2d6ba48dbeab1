package netbench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/engine"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/internal/wasmbuild"
	"github.com/skiffhq/skiff/runtime/wasm"
)

// The size of a run: flags, with defaults from the environment
// (NETBENCH_REQUESTS, NETBENCH_CONCURRENCY) so that a task can set them.
var (
	requests    = flag.Int("netbench.requests", envInt("NETBENCH_REQUESTS", 5000), "requests per row")
	concurrency = flag.Int("netbench.concurrency", envInt("NETBENCH_CONCURRENCY", 8), "concurrent keep-alive connections per row")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// The engine's own loopback ranges, so the benchmark can run beside the
// tests.
const (
	podCIDR     = "127.89.0.0/22"
	serviceCIDR = "127.97.0.0/16"
)

// Bounds of every wait.
const (
	startTimeout = 90 * time.Second // engine, Deployment Ready, ClusterIPs answering
	extraTimeout = 2 * time.Minute  // a row's wait beyond the load generator's own deadline
)

// result is a load generator's result line.
type result struct {
	requests, errors int
	seconds, rps     float64
	p50, p99         time.Duration
}

// row is one line of the table.
type row struct {
	client, server, path string
	r                    result
}

var (
	once sync.Once
	rows []row
)

// BenchmarkWasmToWasmThroughClusterIP: a Wasm pod (testdata/loadgen) calls
// a Wasm Deployment (testdata/server) through its Service's ClusterIP, N
// requests over C keep-alive connections, beside the same two programs
// run natively on loopback in the same run, and the mixed pairs. It does
// one run whatever b.N is (the framework calls it once: a run takes far
// more than -benchtime), prints the table and reports the Wasm-to-Wasm
// req/s and its ratio to native.
func BenchmarkWasmToWasmThroughClusterIP(b *testing.B) {
	once.Do(func() { rows = measure(b, *requests, *concurrency) })
	if len(rows) == 0 {
		b.Fatal("no results (the first run failed)")
	}
	native, wasmRow := rows[0].r, rows[len(rows)-1].r
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(wasmRow.rps, "wasm-req/s")
	b.ReportMetric(native.rps, "native-req/s")
	b.ReportMetric(wasmRow.rps/native.rps, "wasm/native")
	b.ReportMetric(float64(wasmRow.p99.Microseconds()), "wasm-p99-us")
}

func measure(b *testing.B, n, c int) []row {
	ctx := context.Background()
	dir := b.TempDir()
	// The deadline a load generator gives itself, in seconds.
	deadline := 120 + n/100
	rowTimeout := time.Duration(deadline)*time.Second + extraTimeout

	// The programs: the same sources for both sides.
	wasmServer := wasmbuild.Build(b, "./testdata/server", false)
	wasmLoadgen := wasmbuild.Build(b, "./testdata/loadgen", false)
	nativeServer := goBuild(b, dir, "./testdata/server")
	nativeLoadgen := goBuild(b, dir, "./testdata/loadgen")

	// The native server, on a free loopback port.
	nativeAddr := startServer(b, nativeServer)

	// The engine, with the Wasm server as a Deployment behind a Service
	// ("web"), and the native server behind a Service without a selector
	// whose EndpointSlice names it ("native"): the same proxy in front of
	// both.
	e, err := engine.New(engine.Config{DataDir: filepath.Join(dir, "engine"), NodeName: "netbench",
		APIListen: "127.0.0.1:0", PodCIDR: podCIDR, ServiceCIDR: serviceCIDR,
		ImageHosts: []string{"loopback"}, Logger: testutil.Logger(b)})
	if err != nil {
		b.Fatal(err)
	}
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := e.Start(startCtx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	rc, err := e.RESTConfig()
	if err != nil {
		b.Fatal(err)
	}
	cs, err := e.Clientset()
	if err != nil {
		b.Fatal(err)
	}
	serverImage, err := engine.PushImage(startCtx, rc, wasmServer, "netbench-server:1")
	if err != nil {
		b.Fatal(err)
	}
	loadgenImage, err := engine.PushImage(startCtx, rc, wasmLoadgen, "netbench-loadgen:1")
	if err != nil {
		b.Fatal(err)
	}
	webIP := createWeb(b, cs, serverImage)
	podIP := readyPodIP(b, cs, "app=netbench-web")
	nativeIP := createNativeService(b, cs, nativeAddr)
	for _, u := range []string{"http://" + webIP + "/", "http://" + nativeIP + "/", "http://" + podIP + ":8080/"} {
		waitAnswers(b, u)
	}

	args := func(url string) []string {
		return []string{url, strconv.Itoa(n), strconv.Itoa(c), strconv.Itoa(deadline)}
	}
	native := func(url string) result { return runNative(b, nativeLoadgen, args(url), rowTimeout) }
	inPod := func(name, url string) result {
		return runPod(b, cs, name, loadgenImage, args(url), rowTimeout)
	}
	out := []row{
		{"native", "native", "direct 127.0.0.1", native("http://" + nativeAddr + "/")},
		{"native", "native", "ClusterIP", native("http://" + nativeIP + "/")},
		{"native", "wasm", "pod IP", native("http://" + podIP + ":8080/")},
		{"native", "wasm", "ClusterIP", native("http://" + webIP + "/")},
		{"wasm", "native", "ClusterIP", inPod("loadgen-native", "http://"+nativeIP+"/")},
		{"wasm", "wasm", "ClusterIP", inPod("loadgen-web", "http://"+webIP+"/")},
	}
	printTable(os.Stdout, n, c, out)
	return out
}

func printTable(w io.Writer, n, c int, rows []row) {
	fmt.Fprintf(w, "\nrequests/s over a ClusterIP: %d requests per row, %d keep-alive connections, small GET\n", n, c)
	fmt.Fprintf(w, "GOMAXPROCS=%d (native programs and the engine; a wasip1 guest runs on one thread), NumCPU=%d, %s, wazero %s\n",
		runtime.GOMAXPROCS(0), runtime.NumCPU(), runtime.Version(), wazeroVersion())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "client\tserver\tpath\treq/s\tp50\tp99\treq/s vs native\t")
	base := rows[0].r.rps
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%v\t%v\t%.2fx\t\n", r.client, r.server, r.path, r.r.rps,
			r.r.p50, r.r.p99, r.r.rps/base)
	}
	tw.Flush()
	fmt.Fprintln(w, "(native = both programs built for the host, talking over 127.0.0.1 with no proxy; ClusterIP = through the engine's userspace Service proxy)")
}

// wazeroVersion is runtime/wasm's answer, or, in a test binary, which
// carries no module list, what the go command says the build uses.
func wazeroVersion() string {
	if v := wasm.WazeroVersion(); v != "unknown" {
		return v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", "github.com/tetratelabs/wazero").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out)) + " (go list -m)"
}

// goBuild builds pkg for the host into dir and returns the binary's path.
func goBuild(b *testing.B, dir, pkg string) string {
	b.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if msg, err := exec.CommandContext(ctx, "go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// startServer starts the native server on a free loopback port and
// returns its address; the process is killed when the benchmark ends.
func startServer(b *testing.B, bin string) string {
	b.Helper()
	cmd := exec.Command(bin, "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill() // this process only, by its PID
		cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addr <- a
				break
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case a := <-addr:
		return a
	case <-time.After(30 * time.Second):
		b.Fatal("the native server did not say where it listens within 30s")
		return ""
	}
}

// createWeb creates the Wasm server's Deployment and Service and returns
// the ClusterIP.
func createWeb(b *testing.B, cs kubernetes.Interface, image string) string {
	b.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": "netbench-web"}
	replicas := int32(1)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "netbench-web"}, Spec: appsv1.DeploymentSpec{
		Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{RuntimeClassName: ptr("wasm"), Containers: []corev1.Container{{Name: "server", Image: image,
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}},
					PeriodSeconds: 1}}}}}}}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	svc, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "netbench-web"},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}}},
		metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return svc.Spec.ClusterIP
}

// createNativeService puts the native server at addr behind a Service
// without a selector and an EndpointSlice naming it, and returns the
// ClusterIP.
func createNativeService(b *testing.B, cs kubernetes.Interface, addr string) string {
	b.Helper()
	ctx := context.Background()
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		b.Fatal(err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		b.Fatal(err)
	}
	svc, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "netbench-native"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(int32(port))}}}},
		metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "netbench-native-1", Labels: map[string]string{
			discoveryv1.LabelServiceName: "netbench-native", discoveryv1.LabelManagedBy: "netbench"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr(""), Port: ptr(int32(port)), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	return svc.Spec.ClusterIP
}

// readyPodIP waits for a Ready pod with the labels and returns its IP.
func readyPodIP(b *testing.B, cs kubernetes.Interface, selector string) string {
	b.Helper()
	var ip string
	testutil.Eventually(b, startTimeout, func() error {
		pods, err := cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue && p.Status.PodIP != "" {
					ip = p.Status.PodIP
					return nil
				}
			}
		}
		return fmt.Errorf("no ready pod %s", selector)
	})
	return ip
}

// waitAnswers waits until url answers 200, from this process.
func waitAnswers(b *testing.B, url string) {
	b.Helper()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	testutil.Eventually(b, startTimeout, func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	})
}

// runNative runs the native load generator and parses its result.
func runNative(b *testing.B, bin string, args []string, timeout time.Duration) result {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...) // killed (its PID only) when ctx ends
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			b.Fatalf("loadgen %v: %v\n%s%s", args, err, out, ee.Stderr)
		}
		b.Fatalf("loadgen %v: %v", args, err)
	}
	return parse(b, string(out))
}

// runPod runs the Wasm load generator as a pod that is not restarted,
// waits for it to end and parses the result from its log.
func runPod(b *testing.B, cs kubernetes.Interface, name, image string, args []string, timeout time.Duration) result {
	b.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever, RuntimeClassName: ptr("wasm"),
		Containers: []corev1.Container{{Name: "loadgen", Image: image, Command: append([]string{"loadgen"}, args...)}}}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	var phase corev1.PodPhase
	testutil.Eventually(b, timeout, func() error {
		p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		phase = p.Status.Phase
		if phase != corev1.PodSucceeded && phase != corev1.PodFailed {
			return fmt.Errorf("pod %s is %s", name, phase)
		}
		return nil
	})
	logs, err := podLogs(cs, name)
	if err != nil {
		b.Fatalf("pod %s's log: %v", name, err)
	}
	if phase != corev1.PodSucceeded {
		b.Fatalf("pod %s %s:\n%s", name, phase, logs)
	}
	return parse(b, logs)
}

func podLogs(cs kubernetes.Interface, pod string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := cs.CoreV1().Pods("default").GetLogs(pod, &corev1.PodLogOptions{}).Stream(ctx)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	out, err := io.ReadAll(rc)
	return string(out), err
}

// parse finds the result line in a load generator's output.
func parse(b *testing.B, out string) result {
	b.Helper()
	for line := range strings.Lines(out) {
		fields, ok := strings.CutPrefix(strings.TrimSpace(line), "netbench-result ")
		if !ok {
			continue
		}
		kv := map[string]string{}
		for f := range strings.FieldsSeq(fields) {
			k, v, _ := strings.Cut(f, "=")
			kv[k] = v
		}
		var r result
		var errs []error
		num := func(k string) float64 {
			v, err := strconv.ParseFloat(kv[k], 64)
			errs = append(errs, err)
			return v
		}
		r.requests, r.errors = int(num("requests")), int(num("errors"))
		r.seconds, r.rps = num("seconds"), num("rps")
		r.p50 = time.Duration(num("p50_us")) * time.Microsecond
		r.p99 = time.Duration(num("p99_us")) * time.Microsecond
		if err := errors.Join(errs...); err != nil {
			b.Fatalf("result line %q: %v", line, err)
		}
		return r
	}
	b.Fatalf("no result line in:\n%s", out)
	return result{}
}

func ptr[T any](v T) *T { return &v }
