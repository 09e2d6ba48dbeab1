package agent

import (
	"log/slog"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// recordingFirewall remembers the pod it was made for and denies
// everything.
type recordingFirewall struct{ pod *corev1.Pod }

func (recordingFirewall) Allow(skiffrt.Direction, skiffrt.Protocol, netip.AddrPort, uint16) bool {
	return false
}

// enforcer says whether it consults firewalls, as told.
type enforcer struct {
	limitless
	enforced bool
}

func (e enforcer) FirewallEnforced() bool { return e.enforced }

// Each start of a container gets its pod's firewall, made for the pod with
// the address the node gave it; the Node says whether policy is enforced.
func TestContainerGetsItsPodsFirewall(t *testing.T) {
	a := &Agent{cfg: Config{Runtime: limitless{}, MaxPods: 1, Firewall: func(p *corev1.Pod) skiffrt.Firewall {
		return recordingFirewall{pod: p}
	}}, log: slog.New(slog.DiscardHandler), hostIP: "127.0.0.1"}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db", UID: "u1", Labels: map[string]string{"role": "db"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}
	w := &podWorker{a: a, uid: "u1", pod: pod, ip: "127.66.0.5"}
	c := newContainer(w, pod.Spec.Containers[0], false, nil)
	spec, err := c.prepare(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	fw, ok := spec.Firewall.(recordingFirewall)
	if !ok {
		t.Fatalf("container spec's firewall %T, want the agent's", spec.Firewall)
	}
	if fw.pod.Namespace != "shop" || fw.pod.Name != "db" || fw.pod.UID != "u1" || fw.pod.Labels["role"] != "db" ||
		len(fw.pod.Status.PodIPs) != 1 || fw.pod.Status.PodIPs[0].IP != "127.66.0.5" {
		t.Errorf("firewall made for %s/%s uid %s labels %v addresses %v", fw.pod.Namespace, fw.pod.Name, fw.pod.UID,
			fw.pod.Labels, fw.pod.Status.PodIPs)
	}
	if fw.pod == w.pod {
		t.Error("the firewall shares the worker's pod, which later updates change")
	}

	for _, tc := range []struct {
		firewall bool
		rt       skiffrt.Runtime
		want     string
	}{
		{true, enforcer{enforced: true}, NetworkPolicyEnforcedForWasm},
		{false, enforcer{enforced: true}, "not-enforced"},
		{true, enforcer{enforced: false}, "not-enforced"},
		{true, limitless{}, "not-enforced"}, // a runtime that cannot say does not
	} {
		a := &Agent{cfg: Config{Runtime: tc.rt, MaxPods: 1}, log: slog.New(slog.DiscardHandler)}
		if tc.firewall {
			a.cfg.Firewall = func(*corev1.Pod) skiffrt.Firewall { return nil }
		}
		node, err := a.describeNode()
		if err != nil {
			t.Fatal(err)
		}
		if got := node.Labels[NetworkPolicyLabel]; got != tc.want {
			t.Errorf("with firewall %v, runtime %#v: label %s = %q, want %q", tc.firewall, tc.rt, NetworkPolicyLabel, got, tc.want)
		}
	}
}
