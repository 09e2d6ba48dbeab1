package endpoints_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/engine"
	"github.com/skiffhq/skiff/internal/controllers/endpoints"
	"github.com/skiffhq/skiff/internal/testutil"
)

// This package's tests use their own service range, so that the proxy of
// their engines binds nothing another package's tests use. No test here
// serves traffic: pod addresses are only written, never listened on.
const serviceCIDR = "127.69.0.0/16"

// testNode is the node the test pods are bound to: not the engine's own, so
// its node agent leaves them alone and the test plays their kubelet.
const testNode = "test-kubelet"

func startEngine(t *testing.T) (*engine.Engine, kubernetes.Interface) {
	t.Helper()
	e, err := engine.New(engine.Config{DataDir: t.TempDir(), NodeName: "endpoints-test", APIListen: "127.0.0.1:0", ImageHosts: []string{"loopback"},
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

// podSpec describes a test pod: its labels, address and readiness, and the
// named container ports it declares.
type podSpec struct {
	name   string
	labels map[string]string
	ip     string // "" = no address yet
	ready  bool
	ports  map[string]int32
}

// createPod creates a bound pod and, playing the kubelet, writes its status
// through pods/status.
func createPod(t *testing.T, cs kubernetes.Interface, ns string, s podSpec) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	var ports []corev1.ContainerPort
	for name, n := range s.ports {
		ports = append(ports, corev1.ContainerPort{Name: name, ContainerPort: n})
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: ns, Labels: s.labels},
		Spec: corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "app", Image: "app.wasm",
			Ports: ports}}},
	}
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return setPodStatus(t, cs, pod, s.ip, s.ready)
}

func setPodStatus(t *testing.T, cs kubernetes.Interface, pod *corev1.Pod, ip string, ready bool) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		cur.Status.Phase = corev1.PodRunning
		cur.Status.PodIP = ip
		cur.Status.PodIPs = nil
		if ip != "" {
			cur.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		}
		cur.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
		out, err := cs.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			t.Fatalf("pod %s status: %v", pod.Name, err)
		}
		return out
	}
	t.Fatalf("pod %s status: conflicts", pod.Name)
	return nil
}

func createService(t *testing.T, cs kubernetes.Interface, svc *corev1.Service) *corev1.Service {
	t.Helper()
	out, err := cs.CoreV1().Services(svc.Namespace).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func createNamespace(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// sliceView is what a test compares of a Service's slices: every endpoint
// as "ip ready/serving/terminating node pod", sorted, and the ports of each
// slice with endpoints.
type sliceView struct {
	endpoints []string
	ports     []string
	slices    int
}

func viewSlices(t *testing.T, cs kubernetes.Interface, ns, svc string) (sliceView, []discoveryv1.EndpointSlice) {
	t.Helper()
	list, err := cs.DiscoveryV1().EndpointSlices(ns).List(context.Background(),
		metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		t.Fatal(err)
	}
	var v sliceView
	for _, s := range list.Items {
		v.slices++
		for _, ep := range s.Endpoints {
			c := ep.Conditions
			v.endpoints = append(v.endpoints, fmt.Sprintf("%s %t/%t/%t %s %s", strings.Join(ep.Addresses, ","),
				*c.Ready, *c.Serving, *c.Terminating, deref(ep.NodeName), ep.TargetRef.Name))
		}
		for _, p := range s.Ports {
			v.ports = append(v.ports, fmt.Sprintf("%s=%d/%s", *p.Name, *p.Port, *p.Protocol))
		}
	}
	sort.Strings(v.endpoints)
	sort.Strings(v.ports)
	v.ports = slices.Compact(v.ports)
	return v, list.Items
}

// viewEndpoints renders an Endpoints object's subsets as
// "ready|notready ip pod ports".
func viewEndpoints(t *testing.T, cs kubernetes.Interface, ns, name string) ([]string, *corev1.Endpoints, error) {
	t.Helper()
	ep, err := cs.CoreV1().Endpoints(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	var out []string
	for _, ss := range ep.Subsets {
		var ports []string
		for _, p := range ss.Ports {
			ports = append(ports, fmt.Sprintf("%s=%d", p.Name, p.Port))
		}
		sort.Strings(ports)
		for _, a := range ss.Addresses {
			out = append(out, fmt.Sprintf("ready %s %s %s", a.IP, refName(a.TargetRef), strings.Join(ports, ",")))
		}
		for _, a := range ss.NotReadyAddresses {
			out = append(out, fmt.Sprintf("notready %s %s %s", a.IP, refName(a.TargetRef), strings.Join(ports, ",")))
		}
	}
	sort.Strings(out)
	return out, ep, nil
}

func refName(r *corev1.ObjectReference) string {
	if r == nil {
		return "-"
	}
	return r.Name
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func same(got, want []string) error {
	if !slices.Equal(got, want) {
		return fmt.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	return nil
}

const wait = 10 * time.Second

// A Service's slices and Endpoints list its pods with addresses: ready and
// not ready, ports resolved per pod (a named targetPort to each pod's own
// containerPort), owner references to the Service, the managed-by label.
// Pods without an address, finished pods, pods of other namespaces and
// pods the selector does not match are left out. Readiness, label and
// deletion changes follow.
func TestSlicesAndEndpointsFollowPods(t *testing.T) {
	_, cs := startEngine(t)
	ctx := context.Background()
	ns := "default"
	createNamespace(t, cs, "other")
	app := map[string]string{"app": "web"}
	a := createPod(t, cs, ns, podSpec{name: "web-a", labels: app, ip: "127.66.69.1", ready: true, ports: map[string]int32{"http": 8080}})
	createPod(t, cs, ns, podSpec{name: "web-b", labels: app, ip: "127.66.69.2", ready: false, ports: map[string]int32{"http": 9090}})
	createPod(t, cs, ns, podSpec{name: "web-noip", labels: app, ports: map[string]int32{"http": 8080}})
	createPod(t, cs, ns, podSpec{name: "db", labels: map[string]string{"app": "db"}, ip: "127.66.69.9", ready: true})
	createPod(t, cs, "other", podSpec{name: "web-x", labels: app, ip: "127.66.69.8", ready: true, ports: map[string]int32{"http": 8080}})
	svc := createService(t, cs, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, Labels: map[string]string{"tier": "front"}},
		Spec: corev1.ServiceSpec{Selector: app, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
			{Name: "metrics", Port: 9100, TargetPort: intstr.FromInt32(9100)},
		}},
	})

	testutil.Eventually(t, wait, func() error {
		v, _ := viewSlices(t, cs, ns, "web")
		if v.slices != 2 {
			return fmt.Errorf("%d slices, want 2 (the pods resolve http to different ports): %+v", v.slices, v)
		}
		if err := same(v.endpoints, []string{
			"127.66.69.1 true/true/false test-kubelet web-a",
			"127.66.69.2 false/false/false test-kubelet web-b",
		}); err != nil {
			return err
		}
		return same(v.ports, []string{"http=8080/TCP", "http=9090/TCP", "metrics=9100/TCP"})
	})
	_, items := viewSlices(t, cs, ns, "web")
	for _, s := range items {
		if s.Labels[discoveryv1.LabelManagedBy] != endpoints.ManagedBy || s.Labels["tier"] != "front" ||
			s.AddressType != discoveryv1.AddressTypeIPv4 || !strings.HasPrefix(s.Name, "web-") {
			t.Errorf("slice %s: labels %v, address type %s", s.Name, s.Labels, s.AddressType)
		}
		if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != svc.UID || s.OwnerReferences[0].Controller == nil ||
			!*s.OwnerReferences[0].Controller {
			t.Errorf("slice %s: owner references %+v", s.Name, s.OwnerReferences)
		}
		for _, ep := range s.Endpoints {
			if ep.TargetRef.Kind != "Pod" || ep.TargetRef.Namespace != ns || ep.TargetRef.UID == "" {
				t.Errorf("slice %s: target ref %+v", s.Name, ep.TargetRef)
			}
		}
	}
	testutil.Eventually(t, wait, func() error {
		got, ep, err := viewEndpoints(t, cs, ns, "web")
		if err != nil {
			return err
		}
		if len(ep.OwnerReferences) != 1 || ep.OwnerReferences[0].UID != svc.UID {
			return fmt.Errorf("endpoints owner references %+v", ep.OwnerReferences)
		}
		return same(got, []string{
			"notready 127.66.69.2 web-b http=9090,metrics=9100",
			"ready 127.66.69.1 web-a http=8080,metrics=9100",
		})
	})

	// web-b becomes ready, web-a stops being ready.
	b, _ := cs.CoreV1().Pods(ns).Get(ctx, "web-b", metav1.GetOptions{})
	setPodStatus(t, cs, b, "127.66.69.2", true)
	setPodStatus(t, cs, a, "127.66.69.1", false)
	testutil.Eventually(t, wait, func() error {
		v, _ := viewSlices(t, cs, ns, "web")
		return same(v.endpoints, []string{
			"127.66.69.1 false/false/false test-kubelet web-a",
			"127.66.69.2 true/true/false test-kubelet web-b",
		})
	})
	testutil.Eventually(t, wait, func() error {
		got, _, err := viewEndpoints(t, cs, ns, "web")
		if err != nil {
			return err
		}
		return same(got, []string{
			"notready 127.66.69.1 web-a http=8080,metrics=9100",
			"ready 127.66.69.2 web-b http=9090,metrics=9100",
		})
	})

	// A label change takes web-a out of the Service.
	a, _ = cs.CoreV1().Pods(ns).Get(ctx, "web-a", metav1.GetOptions{})
	a.Labels = map[string]string{"app": "retired"}
	if _, err := cs.CoreV1().Pods(ns).Update(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() error {
		v, _ := viewSlices(t, cs, ns, "web")
		if v.slices != 1 {
			return fmt.Errorf("%d slices, want 1 (the emptied one is deleted)", v.slices)
		}
		return same(v.endpoints, []string{"127.66.69.2 true/true/false test-kubelet web-b"})
	})

	// A terminating pod stays in the slices, not ready but serving; the
	// legacy Endpoints drops it.
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "web-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if p, err := cs.CoreV1().Pods(ns).Get(ctx, "web-b", metav1.GetOptions{}); err != nil || p.DeletionTimestamp == nil {
		t.Skipf("the API server deleted the bound pod at once (%v): no terminating phase to test", err)
	}
	testutil.Eventually(t, wait, func() error {
		v, _ := viewSlices(t, cs, ns, "web")
		return same(v.endpoints, []string{"127.66.69.2 false/true/true test-kubelet web-b"})
	})
	testutil.Eventually(t, wait, func() error {
		got, _, err := viewEndpoints(t, cs, ns, "web")
		if err != nil {
			return err
		}
		return same(got, nil)
	})
}

// With no pods, a Service has one empty placeholder slice and an Endpoints
// object without subsets. Deleting the Service deletes both.
func TestPlaceholderAndDeletion(t *testing.T) {
	_, cs := startEngine(t)
	ctx := context.Background()
	createService(t, cs, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "empty", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "none"},
			Ports: []corev1.ServicePort{{Port: 80}}},
	})
	testutil.Eventually(t, wait, func() error {
		v, items := viewSlices(t, cs, "default", "empty")
		if v.slices != 1 || len(v.endpoints) != 0 || len(items[0].Ports) != 0 {
			return fmt.Errorf("want one empty placeholder slice, got %+v", v)
		}
		got, _, err := viewEndpoints(t, cs, "default", "empty")
		if err != nil {
			return err
		}
		return same(got, nil)
	})
	if err := cs.CoreV1().Services("default").Delete(ctx, "empty", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() error {
		if v, _ := viewSlices(t, cs, "default", "empty"); v.slices != 0 {
			return fmt.Errorf("%d slices left", v.slices)
		}
		if _, _, err := viewEndpoints(t, cs, "default", "empty"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("endpoints still there: %v", err)
		}
		return nil
	})
}

// publishNotReadyAddresses lists every pod with an address as ready.
func TestPublishNotReadyAddresses(t *testing.T) {
	_, cs := startEngine(t)
	lbl := map[string]string{"app": "peers"}
	createPod(t, cs, "default", podSpec{name: "peer-0", labels: lbl, ip: "127.66.69.20", ready: false})
	createService(t, cs, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "peers", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: lbl, ClusterIP: corev1.ClusterIPNone, PublishNotReadyAddresses: true,
			Ports: []corev1.ServicePort{{Name: "gossip", Port: 7946}}},
	})
	testutil.Eventually(t, wait, func() error {
		v, items := viewSlices(t, cs, "default", "peers")
		if len(items) == 1 {
			if _, ok := items[0].Labels[corev1.IsHeadlessService]; !ok {
				return fmt.Errorf("headless label missing: %v", items[0].Labels)
			}
		}
		return same(v.endpoints, []string{"127.66.69.20 true/false/false test-kubelet peer-0"})
	})
	testutil.Eventually(t, wait, func() error {
		got, _, err := viewEndpoints(t, cs, "default", "peers")
		if err != nil {
			return err
		}
		return same(got, []string{"ready 127.66.69.20 peer-0 gossip=7946"})
	})
}

// A Service without a selector gets nothing from the controller, and what
// its owner writes stays as written.
func TestSelectorlessServiceLeftAlone(t *testing.T) {
	_, cs := startEngine(t)
	ctx := context.Background()
	createService(t, cs, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "external-db", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 5432}}},
	})
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "external-db", Namespace: "default"},
		Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "127.66.69.30"}},
			Ports: []corev1.EndpointPort{{Port: 5432}}}}}
	if _, err := cs.CoreV1().Endpoints("default").Create(ctx, ep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A pod change in the namespace makes the controller look again.
	createPod(t, cs, "default", podSpec{name: "bystander", labels: map[string]string{"app": "x"}, ip: "127.66.69.31", ready: true})
	// A Service with a selector created after it, synced, shows the
	// controller has run past the selectorless one.
	createService(t, cs, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "marker", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "x"}, Ports: []corev1.ServicePort{{Port: 80}}},
	})
	testutil.Eventually(t, wait, func() error {
		v, _ := viewSlices(t, cs, "default", "marker")
		return same(v.endpoints, []string{"127.66.69.31 true/true/false test-kubelet bystander"})
	})
	if v, _ := viewSlices(t, cs, "default", "external-db"); v.slices != 0 {
		t.Fatalf("selectorless service got %d slices", v.slices)
	}
	got, cur, err := viewEndpoints(t, cs, "default", "external-db")
	if err != nil {
		t.Fatal(err)
	}
	if err := same(got, []string{"ready 127.66.69.30 - =5432"}); err != nil {
		t.Fatalf("user endpoints changed: %v", err)
	}
	if len(cur.OwnerReferences) != 0 || cur.Labels["endpointslice.kubernetes.io/skip-mirror"] != "" {
		t.Fatalf("user endpoints taken over: %+v", cur.ObjectMeta)
	}
}

// A Service with more pods than fit one slice gets several, each within the
// bound, every pod exactly once; when most pods go, the emptied slices go.
func TestManyPodsSplitIntoSlices(t *testing.T) {
	_, cs := startEngine(t)
	ctx := context.Background()
	lbl := map[string]string{"app": "many"}
	const n = 130
	for i := range n {
		createPod(t, cs, "default", podSpec{name: fmt.Sprintf("many-%03d", i), labels: lbl,
			ip: fmt.Sprintf("127.66.70.%d", i+1), ready: true})
	}
	createService(t, cs, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "many", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Selector: lbl, Ports: []corev1.ServicePort{{Port: 80}}},
	})
	testutil.Eventually(t, 30*time.Second, func() error {
		v, items := viewSlices(t, cs, "default", "many")
		for _, s := range items {
			if len(s.Endpoints) > 100 {
				return fmt.Errorf("slice %s has %d endpoints", s.Name, len(s.Endpoints))
			}
		}
		if v.slices != 2 || len(v.endpoints) != n || len(slices.Compact(v.endpoints)) != n {
			return fmt.Errorf("%d slices, %d endpoints", v.slices, len(v.endpoints))
		}
		return nil
	})
	for i := 10; i < n; i++ {
		if err := cs.CoreV1().Pods("default").Delete(ctx, fmt.Sprintf("many-%03d", i),
			metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		v, _ := viewSlices(t, cs, "default", "many")
		if v.slices != 1 || len(v.endpoints) != 10 {
			return fmt.Errorf("%d slices, %d endpoints; want 1 and 10", v.slices, len(v.endpoints))
		}
		return nil
	})
	// The Endpoints object lists them all in one subset.
	testutil.Eventually(t, wait, func() error {
		got, _, err := viewEndpoints(t, cs, "default", "many")
		if err != nil {
			return err
		}
		if len(got) != 10 {
			return fmt.Errorf("%d addresses", len(got))
		}
		return nil
	})
}

// Someone deleting a managed slice or the Endpoints object gets them back.
func TestDeletedObjectsComeBack(t *testing.T) {
	_, cs := startEngine(t)
	ctx := context.Background()
	lbl := map[string]string{"app": "back"}
	createPod(t, cs, "default", podSpec{name: "back-0", labels: lbl, ip: "127.66.69.40", ready: true})
	createService(t, cs, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "back", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Selector: lbl, Ports: []corev1.ServicePort{{Port: 80}}},
	})
	want := []string{"127.66.69.40 true/true/false test-kubelet back-0"}
	var first string
	testutil.Eventually(t, wait, func() error {
		v, items := viewSlices(t, cs, "default", "back")
		if err := same(v.endpoints, want); err != nil {
			return err
		}
		first = items[0].Name
		_, _, err := viewEndpoints(t, cs, "default", "back")
		return err
	})
	if err := cs.DiscoveryV1().EndpointSlices("default").Delete(ctx, first, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Endpoints("default").Delete(ctx, "back", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() error {
		v, items := viewSlices(t, cs, "default", "back")
		if err := same(v.endpoints, want); err != nil {
			return err
		}
		if items[0].Name == first {
			return fmt.Errorf("slice %s not deleted yet", first)
		}
		got, _, err := viewEndpoints(t, cs, "default", "back")
		if err != nil {
			return err
		}
		return same(got, []string{"ready 127.66.69.40 back-0 =80"})
	})
}

// kubectl shows the endpoints: get endpointslices, get endpoints, and
// describe service's Endpoints line.
func TestKubectlShowsEndpoints(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	e, cs := startEngine(t)
	lbl := map[string]string{"app": "shown"}
	createPod(t, cs, "default", podSpec{name: "shown-0", labels: lbl, ip: "127.66.69.50", ready: true,
		ports: map[string]int32{"http": 8080}})
	createPod(t, cs, "default", podSpec{name: "shown-1", labels: lbl, ip: "127.66.69.51", ready: true,
		ports: map[string]int32{"http": 8080}})
	createService(t, cs, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "shown", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: lbl,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	})
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", e.KubeconfigPath()}, args...)...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	want := "127.66.69.50:8080,127.66.69.51:8080"
	testutil.Eventually(t, wait, func() error {
		out, err := run("describe", "svc", "shown")
		if err != nil {
			return err
		}
		if !strings.Contains(out, want) {
			return fmt.Errorf("describe svc has no %q:\n%s", want, out)
		}
		return nil
	})
	out, err := run("get", "endpointslices", "-l", "kubernetes.io/service-name=shown")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "IPv4") || !strings.Contains(out, "8080") || !strings.Contains(out, "127.66.69.50,127.66.69.51") {
		t.Fatalf("get endpointslices:\n%s", out)
	}
	out, err = run("get", "endpoints", "shown")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, want) {
		t.Fatalf("get endpoints:\n%s", out)
	}
	t.Logf("kubectl get endpoints:\n%s", out)
}
