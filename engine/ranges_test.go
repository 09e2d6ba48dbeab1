package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/sleeper"
	"github.com/skiffhq/skiff/internal/testutil"
)

// engineRanges is what an engine's cluster uses: its resolved ranges, the
// node's pod range and the kubernetes Service's address, which must lie
// inside them.
func engineRanges(t *testing.T, e *Engine) (pods, svcs netip.Prefix) {
	t.Helper()
	pods = netip.MustParsePrefix(e.Config().ClusterPodCIDR)
	svcs = netip.MustParsePrefix(e.Config().ServiceCIDR)
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kube, err := cs.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !svcs.Contains(netip.MustParseAddr(kube.Spec.ClusterIP)) {
		t.Errorf("kubernetes Service at %s, outside the service range %s", kube.Spec.ClusterIP, svcs)
	}
	node, err := cs.CoreV1().Nodes().Get(ctx, e.Config().NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := netip.ParsePrefix(node.Spec.PodCIDR); err != nil || !pods.Overlaps(p) || p.Bits() < pods.Bits() {
		t.Errorf("node pod range %q, outside the cluster pod range %s", node.Spec.PodCIDR, pods)
	}
	return pods, svcs
}

// Two servers on one machine, given no ranges, choose disjoint loopback
// ranges, and a restarted one keeps its own, recorded in its data
// directory, even when the other has gone.
func TestEnginesOnOneMachineGetDisjointRanges(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startEngine(t, Config{DataDir: dirA, NodeName: "ranges-a"})
	b := startEngine(t, Config{DataDir: dirB, NodeName: "ranges-b"})
	podsA, svcsA := engineRanges(t, a)
	podsB, svcsB := engineRanges(t, b)
	all := []netip.Prefix{podsA, svcsA, podsB, svcsB}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			if all[i].Overlaps(all[j]) {
				t.Fatalf("ranges overlap: A pods %s services %s, B pods %s services %s", podsA, svcsA, podsB, svcsB)
			}
		}
	}
	for _, p := range all {
		if !netip.MustParsePrefix("127.0.0.0/8").Contains(p.Addr()) || p.Bits() != 16 {
			t.Errorf("chosen range %s: want a loopback /16", p)
		}
	}

	// B restarts after A stopped, so A's ranges are free: B keeps its own.
	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	b2 := startEngine(t, Config{DataDir: dirB, NodeName: "ranges-b"})
	if pods, svcs := engineRanges(t, b2); pods != podsB || svcs != svcsB {
		t.Fatalf("after a restart B has pods %s services %s; want its recorded %s, %s", pods, svcs, podsB, svcsB)
	}
	// Ranges given are used as given, beside B's.
	c := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "ranges-c", ClusterPodCIDR: "127.90.0.0/16", ServiceCIDR: "127.91.0.0/16"})
	if c.Config().ClusterPodCIDR != "127.90.0.0/16" || c.Config().ServiceCIDR != "127.91.0.0/16" {
		t.Fatalf("explicit ranges not kept: %s, %s", c.Config().ClusterPodCIDR, c.Config().ServiceCIDR)
	}
}

// A pod whose port cannot be bound at its IP (another process holds the
// address) says so in its container state and a Warning event, rather
// than crash-looping with no word of why.
func TestWasmPodPortTakenIsReported(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"sleeper:1": sleeper.Module()})
	// A /29 of pod addresses, every one held on the container's port.
	const cidr = "127.95.1.0/29"
	p := netip.MustParsePrefix(cidr)
	for a := p.Addr(); p.Contains(a); a = a.Next() {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(a, 8080).String())
		if err != nil {
			t.Skipf("cannot hold %s:8080: %v", a, err)
		}
		t.Cleanup(func() { ln.Close() })
	}
	_, cs := moreEngine(t, "port-taken", cidr)
	createPods(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "taken"}, Spec: corev1.PodSpec{NodeName: "port-taken",
		Containers: []corev1.Container{{Name: "s", Image: host + "/sleeper:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}}})
	pod := waitPod(t, cs, "default", "taken", moreWait, "reports the taken port", func(p *corev1.Pod) bool {
		for _, st := range p.Status.ContainerStatuses {
			for _, s := range []corev1.ContainerState{st.State, st.LastTerminationState} {
				if s.Terminated != nil && s.Terminated.Reason == "StartError" {
					return true
				}
			}
		}
		return false
	})
	st := pod.Status.ContainerStatuses[0]
	term := st.State.Terminated
	if term == nil {
		term = st.LastTerminationState.Terminated
	}
	for _, want := range []string{"cannot listen on the container's ports at the pod IP 127.95.1.", "address already in use", "pod range"} {
		if !strings.Contains(term.Message, want) {
			t.Errorf("state message %q lacks %q", term.Message, want)
		}
	}
	testutil.Eventually(t, moreWait, func() error {
		evs, err := cs.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=taken"})
		if err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if ev.Type == corev1.EventTypeWarning && ev.Reason == "Failed" && strings.Contains(ev.Message, "cannot listen on the container's ports") {
				return nil
			}
		}
		return fmt.Errorf("no Warning event about the port among %d events", len(evs.Items))
	})
}
