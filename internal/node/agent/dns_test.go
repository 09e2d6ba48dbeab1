package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// dnsAgent is an agent with only what pods' /etc files need: the cluster
// DNS address (unless none) and a node resolv.conf of the test's.
func dnsAgent(t *testing.T, clusterDNS ...string) *Agent {
	t.Helper()
	dir := t.TempDir()
	rc := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(rc, []byte("# the node's\nnameserver 127.0.0.53\nsearch corp.test\noptions edns0 trust-ad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: Config{NodeName: "n", DataDir: dir, ClusterDNS: clusterDNS, ClusterDomain: "cluster.local", ResolvConf: rc},
		log: slog.New(slog.DiscardHandler), heartbeatNow: make(chan struct{}, 1), runCtx: context.Background()}
	a.reports = newReporter(a)
	a.pods = newPodManager(a)
	return a
}

func dnsPod(mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "web-0", UID: "uid-1"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
	if mutate != nil {
		mutate(p)
	}
	return p
}

// podFiles sets the pod up as its worker does and returns its /etc files
// and the first container's spec.
func podFiles(t *testing.T, a *Agent, pod *corev1.Pod) (files map[string]string, spec skiffrt.ContainerSpec) {
	t.Helper()
	w := a.newPodWorker(pod)
	w.ip = "127.66.0.9"
	if err := w.setUpNodeFiles(pod, w.ip); err != nil {
		t.Fatal(err)
	}
	files = map[string]string{}
	for _, n := range []string{"resolv.conf", "hosts", "hostname"} {
		b, err := os.ReadFile(filepath.Join(w.dir, "etc", n))
		if err != nil {
			t.Fatal(err)
		}
		files[n] = string(b)
	}
	spec, err := w.containers[0].prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return files, spec
}

const managedHosts = "# Kubernetes-managed hosts file.\n" +
	"127.0.0.1\tlocalhost\n" +
	"::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\n" +
	"fe00::0\tip6-mcastprefix\n" +
	"fe00::1\tip6-allnodes\n" +
	"fe00::2\tip6-allrouters\n"

// ClusterFirst (the default): the cluster DNS, the cluster's search
// domains before the node's, ndots:5; hosts with the pod's FQDN (it has a
// subdomain) and its host aliases; /etc mounted read-only, last.
func TestPodDNSClusterFirst(t *testing.T) {
	a := dnsAgent(t, "127.82.0.10")
	files, spec := podFiles(t, a, dnsPod(func(p *corev1.Pod) {
		p.Spec.Subdomain = "web"
		p.Spec.HostAliases = []corev1.HostAlias{{IP: "127.0.0.1", Hostnames: []string{"foo.local", "bar.local"}},
			{IP: "::1", Hostnames: []string{"baz.local"}}}
		p.Spec.Containers[0].VolumeMounts = nil
	}))
	wantResolv := "nameserver 127.82.0.10\n" +
		"search team.svc.cluster.local svc.cluster.local cluster.local corp.test\n" +
		"options ndots:5\n"
	if files["resolv.conf"] != wantResolv {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", files["resolv.conf"], wantResolv)
	}
	wantHosts := managedHosts + "127.66.0.9\tweb-0.web.team.svc.cluster.local\tweb-0\n" +
		"\n# Entries added by HostAliases.\n" +
		"127.0.0.1\tfoo.local\tbar.local\n" +
		"::1\tbaz.local\n"
	if files["hosts"] != wantHosts {
		t.Errorf("hosts:\n%s\nwant:\n%s", files["hosts"], wantHosts)
	}
	if files["hostname"] != "web-0\n" {
		t.Errorf("hostname: %q", files["hostname"])
	}
	last := spec.Mounts[len(spec.Mounts)-1]
	if last.GuestPath != "/etc" || !last.ReadOnly || !last.NodeFiles || filepath.Base(last.HostPath) != "etc" {
		t.Errorf("last mount: %+v", last)
	}
	want := &skiffrt.DNSConfig{Nameservers: []string{"127.82.0.10"},
		Searches: []string{"team.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.test"}, Ndots: 5}
	if !reflect.DeepEqual(spec.DNS, want) {
		t.Errorf("ContainerSpec.DNS = %+v, want %+v", spec.DNS, want)
	}
	if spec.Hostname != "web-0" {
		t.Errorf("hostname %q", spec.Hostname)
	}
}

// None with dnsConfig: nothing but the pod's own configuration.
func TestPodDNSNone(t *testing.T) {
	a := dnsAgent(t, "127.82.0.10")
	two := "2"
	files, spec := podFiles(t, a, dnsPod(func(p *corev1.Pod) {
		p.Spec.DNSPolicy = corev1.DNSNone
		p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"127.0.0.1", "::1"}, Searches: []string{"a.test", "b.test"},
			Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &two}, {Name: "edns0"}}}
	}))
	wantResolv := "nameserver 127.0.0.1\nnameserver ::1\nsearch a.test b.test\noptions ndots:2 edns0\n"
	if files["resolv.conf"] != wantResolv {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", files["resolv.conf"], wantResolv)
	}
	if files["hosts"] != managedHosts+"127.66.0.9\tweb-0\n" {
		t.Errorf("hosts:\n%s", files["hosts"])
	}
	want := &skiffrt.DNSConfig{Nameservers: []string{"127.0.0.1", "::1"}, Searches: []string{"a.test", "b.test"}, Ndots: 2}
	if !reflect.DeepEqual(spec.DNS, want) {
		t.Errorf("ContainerSpec.DNS = %+v, want %+v", spec.DNS, want)
	}
}

// The other policies, dnsConfig merged into ClusterFirst, the limits, and
// a container that mounts its own /etc.
func TestPodDNSPolicies(t *testing.T) {
	one := "1"
	for _, tc := range []struct {
		name       string
		clusterDNS []string
		mutate     func(*corev1.Pod)
		want       string
		event      string
	}{
		{name: "Default", clusterDNS: []string{"127.82.0.10"},
			mutate: func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSDefault },
			want:   "nameserver 127.0.0.53\nsearch corp.test\noptions edns0 trust-ad\n"},
		{name: "ClusterFirst with hostNetwork is Default", clusterDNS: []string{"127.82.0.10"},
			mutate: func(p *corev1.Pod) { p.Spec.HostNetwork = true },
			want:   "nameserver 127.0.0.53\nsearch corp.test\noptions edns0 trust-ad\n"},
		{name: "ClusterFirstWithHostNet", clusterDNS: []string{"127.82.0.10"},
			mutate: func(p *corev1.Pod) { p.Spec.HostNetwork = true; p.Spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet },
			want:   "nameserver 127.82.0.10\nsearch team.svc.cluster.local svc.cluster.local cluster.local corp.test\noptions ndots:5\n"},
		{name: "ClusterFirst without cluster DNS falls back to Default",
			want:  "nameserver 127.0.0.53\nsearch corp.test\noptions edns0 trust-ad\n",
			event: "MissingClusterDNS"},
		{name: "ClusterFirst with dnsConfig", clusterDNS: []string{"127.82.0.10"},
			mutate: func(p *corev1.Pod) {
				p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"127.0.0.1"}, Searches: []string{"cluster.local", "extra.test"},
					Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &one}, {Name: "single-request"}}}
			},
			want: "nameserver 127.82.0.10\nnameserver 127.0.0.1\n" +
				"search team.svc.cluster.local svc.cluster.local cluster.local corp.test extra.test\noptions ndots:1 single-request\n"},
		{name: "too many nameservers", clusterDNS: []string{"127.82.0.10"},
			mutate: func(p *corev1.Pod) {
				p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}}
			},
			want:  "nameserver 127.82.0.10\nnameserver 127.0.0.1\nnameserver 127.0.0.2\nsearch team.svc.cluster.local svc.cluster.local cluster.local corp.test\noptions ndots:5\n",
			event: "DNSConfigForming"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := dnsAgent(t, tc.clusterDNS...)
			files, _ := podFiles(t, a, dnsPod(tc.mutate))
			if files["resolv.conf"] != tc.want {
				t.Errorf("resolv.conf:\n%s\nwant:\n%s", files["resolv.conf"], tc.want)
			}
			var reasons []string
			for _, ev := range a.reports.events {
				reasons = append(reasons, ev.Reason)
			}
			if got := strings.Join(reasons, ","); got != tc.event {
				t.Errorf("events %q, want %q", got, tc.event)
			}
		})
	}

	// A container that mounts a volume at /etc keeps it, and gets no
	// node files over it.
	a := dnsAgent(t, "127.82.0.10")
	pod := dnsPod(func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "etc", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "etc", MountPath: "/etc/"}}
	})
	w := a.newPodWorker(pod)
	w.containers[0].volumes = map[string]string{"etc": t.TempDir()}
	if err := w.setUpNodeFiles(pod, "127.66.0.9"); err != nil {
		t.Fatal(err)
	}
	spec, err := w.containers[0].prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range spec.Mounts {
		if m.NodeFiles {
			t.Errorf("node files mounted over the container's own /etc: %+v", spec.Mounts)
		}
	}
}
