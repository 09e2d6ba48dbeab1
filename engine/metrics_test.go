package engine

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"k8s.io/metrics/pkg/client/custom_metrics"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/internal/wasmbuild"
)

// topRow is one row of `kubectl top pods`: CPU in millicores, memory in
// bytes.
type topRow struct {
	cpuMilli int64
	memBytes int64
}

// parseTop reads `kubectl top` output into rows by the name in column
// nameCol, CPU in the next column and memory in the one after (pods), or
// two after (nodes, with a CPU% column between).
func parseTop(t *testing.T, out string, nameCol int) map[string]topRow {
	return parseTopCols(t, out, nameCol, 2)
}

func parseTopCols(t *testing.T, out string, nameCol, memOffset int) map[string]topRow {
	t.Helper()
	rows := map[string]topRow{}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < nameCol+memOffset+1 {
			t.Fatalf("kubectl top row %q", l)
		}
		cpu, err := strconv.ParseInt(strings.TrimSuffix(f[nameCol+1], "m"), 10, 64)
		if err != nil {
			t.Fatalf("CPU of %q: %v", l, err)
		}
		mem, err := strconv.ParseInt(strings.TrimSuffix(f[nameCol+memOffset], "Mi"), 10, 64)
		if err != nil {
			t.Fatalf("memory of %q: %v", l, err)
		}
		rows[f[nameCol]] = topRow{cpuMilli: cpu, memBytes: mem << 20}
	}
	return rows
}

// TestKubectlTopAndCustomMetrics: the node reports usage every second; a
// Wasm pod that spins shows more CPU in `kubectl top pods` than one that
// sleeps, with memory; the node has a row in `kubectl top nodes`; and an
// SDK handler pod under HTTP load has http_requests_per_second > 0 through
// client-go's custom metrics client, falling back to about 0 once the load
// stops. A command module, whose sockets the host does not serve, has no
// such metric (404), never a made-up 0.
func TestKubectlTopAndCustomMetrics(t *testing.T) {
	host := testRegistry(t, map[string][]byte{
		"spin:1":    wasmbuild.Build(t, "../runtime/wasm/testdata/spin", false),
		"sleeper:1": wasmbuild.Build(t, "../runtime/wasm/testdata/sleeper", false),
		"handler:1": wasmbuild.Build(t, "../examples/handler", true),
	})
	const node = "metrics-1"
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: node, PodCIDR: "127.114.0.0/22", ServiceCIDR: "127.115.0.0/16",
		MetricsInterval: time.Second})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	k := newKubectl(t, e)
	ctx := context.Background()

	pod := func(name, app, image string, port int32) *corev1.Pod {
		c := corev1.Container{Name: app, Image: host + "/" + image}
		if port != 0 {
			c.Ports = []corev1.ContainerPort{{ContainerPort: port}}
		}
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app}},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{c}}}
	}
	createPods(t, cs, pod("busy", "spin", "spin:1", 0), pod("idle", "sleeper", "sleeper:1", 0), pod("web", "web", "handler:1", 8080))
	running := func(p *corev1.Pod) bool {
		return p.Status.PodIP != "" && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
	}
	for _, name := range []string{"busy", "idle"} {
		waitPod(t, cs, "default", name, moreWait, "running", running)
	}
	webIP := waitPod(t, cs, "default", "web", moreWait, "running", running).Status.PodIP

	// kubectl top pods: both pods once each has two reports; the spinner
	// uses more CPU than the sleeper (it keeps a core busy when it can),
	// and memory is the guest's linear memory.
	var rows map[string]topRow
	testutil.Eventually(t, 30*time.Second, func() error {
		out, errOut, code := k.run("", "", "top", "pods", "--no-headers=false")
		if code != 0 {
			return fmt.Errorf("kubectl top pods: exit %d: %s", code, errOut)
		}
		rows = parseTop(t, out, 0)
		if _, ok := rows["busy"]; !ok {
			return fmt.Errorf("no row for busy:\n%s", out)
		}
		if _, ok := rows["idle"]; !ok {
			return fmt.Errorf("no row for idle:\n%s", out)
		}
		if rows["busy"].cpuMilli <= rows["idle"].cpuMilli {
			return fmt.Errorf("busy %dm not above idle %dm", rows["busy"].cpuMilli, rows["idle"].cpuMilli)
		}
		// A report sent before a guest's instance is up has no linear
		// memory yet (CI once saw idle at 0Mi beside busy at 2Mi); the
		// next report has it.
		if rows["busy"].memBytes <= 0 || rows["idle"].memBytes <= 0 {
			return fmt.Errorf("memory busy %d idle %d, want both above 0", rows["busy"].memBytes, rows["idle"].memBytes)
		}
		return nil
	})
	t.Logf("kubectl top pods: busy %dm %dMi, idle %dm %dMi", rows["busy"].cpuMilli, rows["busy"].memBytes>>20,
		rows["idle"].cpuMilli, rows["idle"].memBytes>>20)

	if out := k.ok("", "", "top", "pods", "-A"); !strings.Contains(out, "NAMESPACE") || parseTop(t, out, 1)["busy"].cpuMilli == 0 {
		t.Errorf("kubectl top pods -A:\n%s", out)
	}
	if out := k.ok("", "", "top", "pod", "busy", "--containers"); !strings.Contains(out, "busy") || !strings.Contains(out, "spin") {
		t.Errorf("kubectl top pod busy --containers:\n%s", out)
	}
	if out := k.ok("", "", "top", "pods", "-l", "app=sleeper"); !strings.Contains(out, "idle") || strings.Contains(out, "busy") {
		t.Errorf("kubectl top pods -l app=sleeper:\n%s", out)
	}
	if out := k.ok("", "", "top", "nodes"); len(parseTopCols(t, out, 0, 3)) != 1 {
		t.Errorf("kubectl top nodes:\n%s", out)
	} else if r := parseTopCols(t, out, 0, 3)[node]; r.memBytes <= 0 || r.cpuMilli <= 0 {
		t.Errorf("node %s: CPU %dm memory %d:\n%s", node, r.cpuMilli, r.memBytes, out)
	}
	if _, errOut, code := k.run("", "", "top", "pod", "nosuch"); code == 0 || !strings.Contains(errOut, "not found") {
		t.Errorf("kubectl top pod nosuch: exit %d: %s", code, errOut)
	}
	if _, errOut, code := k.run("", "", "get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes/nosuch"); code == 0 || !strings.Contains(errOut, "NotFound") {
		t.Errorf("GET nodes/nosuch metrics: exit %d: %s", code, errOut)
	}

	// The resource metrics API through client-go's metrics clientset, as
	// an autoscaler reads it, with protobuf asked for first (the server
	// answers JSON, which the client decodes as well).
	cfg, err := e.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	pcfg := *cfg
	pcfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	mc, err := metricsclient.NewForConfig(&pcfg)
	if err != nil {
		t.Fatal(err)
	}
	pml, err := mc.MetricsV1beta1().PodMetricses("default").List(ctx, metav1.ListOptions{LabelSelector: "app=spin"})
	if err != nil || len(pml.Items) != 1 || pml.Items[0].Name != "busy" || len(pml.Items[0].Containers) != 1 ||
		pml.Items[0].Containers[0].Usage.Cpu().IsZero() || pml.Items[0].Window.Duration <= 0 {
		t.Errorf("PodMetricses(default).List(app=spin): %+v, %v", pml, err)
	}
	if nm, err := mc.MetricsV1beta1().NodeMetricses().Get(ctx, node, metav1.GetOptions{}); err != nil || nm.Usage.Memory().IsZero() {
		t.Errorf("NodeMetricses().Get(%s): %+v, %v", node, nm, err)
	}
	if _, err := mc.MetricsV1beta1().PodMetricses("default").Get(ctx, "nosuch", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("PodMetricses().Get(nosuch): %v, want NotFound", err)
	}

	// The custom metrics API, as an autoscaler reads it.
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	cm := custom_metrics.NewForConfig(cfg, mapper, custom_metrics.NewAvailableAPIsGetter(dc)).NamespacedMetrics("default")
	podGK := schema.GroupKind{Kind: "Pod"}
	webSel := labels.SelectorFromSet(labels.Set{"app": "web"})
	rps := func() (float64, error) {
		list, err := cm.GetForObjects(podGK, webSel, "http_requests_per_second", labels.Everything())
		if err != nil {
			return 0, err
		}
		if len(list.Items) != 1 || list.Items[0].DescribedObject.Name != "web" {
			return 0, fmt.Errorf("items %+v, want web's", list.Items)
		}
		return list.Items[0].Value.AsApproximateFloat64(), nil
	}

	// Load: a bounded loop of requests (at most 4000, at most 60 s) until
	// told to stop.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served, failed int
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 5 * time.Second}
		deadline := time.Now().Add(60 * time.Second)
		for i := 0; i < 4000 && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := client.Get("http://" + webIP + ":8080/")
			if err != nil {
				failed++
				time.Sleep(10 * time.Millisecond)
				continue
			}
			resp.Body.Close()
			served++
			time.Sleep(5 * time.Millisecond)
		}
	}()
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()
	var under float64
	testutil.Eventually(t, 40*time.Second, func() error {
		v, err := rps()
		if err != nil {
			return err
		}
		if v <= 0 {
			return fmt.Errorf("http_requests_per_second = %v under load", v)
		}
		under = v
		return nil
	})
	stopLoad()
	t.Logf("http_requests_per_second under load: %.1f (%d requests served, %d failed)", under, served, failed)
	testutil.Eventually(t, 30*time.Second, func() error {
		v, err := rps()
		if err != nil {
			return err
		}
		if v > 0.5 {
			return fmt.Errorf("http_requests_per_second = %v after the load stopped", v)
		}
		return nil
	})
	one, err := cm.GetForObject(podGK, "web", "http_requests_per_second", labels.Everything())
	if err != nil || one.DescribedObject.Name != "web" {
		t.Errorf("GetForObject web: %+v, %v", one, err)
	}

	// No number is made up: a command module's requests are not counted,
	// and an unknown metric is not served.
	if _, err := cm.GetForObject(podGK, "busy", "http_requests_per_second", labels.Everything()); !apierrors.IsNotFound(err) {
		t.Errorf("http_requests_per_second of a command pod: %v, want NotFound", err)
	}
	if _, err := cm.GetForObject(podGK, "web", "nosuch_metric", labels.Everything()); !apierrors.IsNotFound(err) {
		t.Errorf("an unknown metric: %v, want NotFound", err)
	}
}

// TestWorkerReportsUsage: a worker on its own bus connection (TLS, the node
// identity and its permissions) reports its usage, and the server serves
// it as the worker node's NodeMetrics.
func TestWorkerReportsUsage(t *testing.T) {
	ctx := context.Background()
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "metrics-cp", APIListen: "127.0.0.1:0", BusListen: "127.0.0.1:0",
		ServiceCIDR: "127.115.0.0/16", ClusterPodCIDR: "127.114.0.0/16", DisableServiceProxy: true, MetricsInterval: time.Second})
	apiURL, err := url.Parse(e.api.URL())
	if err != nil {
		t.Fatal(err)
	}
	w, err := StartWorker(ctx, WorkerConfig{Server: apiURL.Host, Token: e.joinToken, DataDir: t.TempDir(), NodeName: "metrics-edge",
		ImageHosts: []string{"loopback"}, MetricsInterval: time.Second, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop(context.Background()) })
	cfg, err := e.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	mc, err := metricsclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		nm, err := mc.MetricsV1beta1().NodeMetricses().Get(ctx, "metrics-edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if nm.Usage.Memory().IsZero() || nm.Window.Duration <= 0 {
			t.Fatalf("worker's node metrics %+v", nm)
		}
		return nil
	})
	list, err := mc.MetricsV1beta1().NodeMetricses().List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/hostname=metrics-edge"})
	if err != nil || len(list.Items) != 1 || list.Items[0].Name != "metrics-edge" {
		t.Errorf("nodes labelled metrics-edge: %+v, %v", list, err)
	}
}
