package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffhq/skiff/internal/imageregistry"
)

// This file's loopback range (127.129.0.0/16): API hosts, pod and service
// addresses, apart so none collides with another test's.
const (
	regClusterPodCIDR     = "127.129.128.0/17"
	regClusterServiceCIDR = "127.129.16.0/20"
)

// commandModule is a WASI command that exits 0, (module (func (export
// "_start"))), padded with a custom section of pad bytes so its layer
// spans several bus messages.
func commandModule(pad int) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00) // type section: () -> ()
	b = append(b, 0x03, 0x02, 0x01, 0x00)             // function section: one of type 0
	exp := append([]byte{0x01, 6}, "_start"...)
	exp = append(exp, 0x00, 0x00)
	b = append(b, 0x07, byte(len(exp)))
	b = append(b, exp...)
	b = append(b, 0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b) // code section: an empty body
	section := append([]byte{4}, "test"...)
	for i := range pad {
		section = append(section, byte(i*7+i>>8))
	}
	b = append(b, 0)
	for v := uint64(len(section)); ; {
		c := byte(v & 0x7f)
		if v >>= 7; v != 0 {
			b = append(b, c|0x80)
			continue
		}
		b = append(b, c)
		break
	}
	return append(b, section...)
}

// registryHas asks one server's registry through its API port whether it
// has repo:tag. With local, only that registry answers (the replica header
// turns pull-through off, as for a peer); without, it asks its peers on a
// miss.
func registryHas(ctx context.Context, s *clusterServer, repo, tag string, local bool) (bool, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(s.dir, "kubeconfig.yaml"))
	if err != nil {
		return false, err
	}
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return false, err
	}
	hc.Timeout = 5 * time.Second
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, "https://"+s.api+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		return false, err
	}
	if local {
		req.Header.Set(imageregistry.ReplicaHeader, "1")
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("HEAD %s: %s", req.URL, resp.Status)
}

// The embedded registry in a three-server cluster: a module imported
// through server 1 while server 3 is down is copied to server 2 (fan-out:
// its registry has it before anyone asks) and a pod pinned to server 2 runs
// it; server 3, restarted, misses it locally and fetches it from a peer on
// the first pull (pull-through), and a pod pinned to it runs it too.
func TestRegistryAcrossServers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers: not with -short")
	}
	var servers []*clusterServer
	for i := range 3 {
		s := &clusterServer{name: fmt.Sprintf("reg-%d", i+1), dir: filepath.Join(t.TempDir(), "data"),
			api: freeAPIAddr(t, fmt.Sprintf("127.129.1.%d", i+1))}
		extra := []string{"--node-name", s.name, "--image-hosts", "loopback", "--no-cluster-dns"}
		if i == 0 {
			extra = append(extra, "--cluster-pod-cidr", regClusterPodCIDR, "--service-cidr", regClusterServiceCIDR)
		} else {
			extra = append(extra, "--join", servers[0].api, "--token-file", filepath.Join(servers[0].dir, "token"))
		}
		s.start(t, extra...)
		servers = append(servers, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // bounds a hang; not a timing assertion
	defer cancel()
	if err := until(300, func() error {
		for _, s := range servers {
			n, err := servers[0].cs.CoreV1().Nodes().Get(ctx, s.name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			ready := false
			for _, c := range n.Status.Conditions {
				ready = ready || c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
			}
			if !ready {
				return fmt.Errorf("node %s not Ready", s.name)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	servers[2].kill(t)
	file := filepath.Join(t.TempDir(), "exit0.wasm")
	if err := os.WriteFile(file, commandModule(700<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	imported := time.Now()
	if out, err := runSkiff(t, "image", "import", "--kubeconfig", filepath.Join(servers[0].dir, "kubeconfig.yaml"), file, "exit0:1"); err != nil {
		t.Fatalf("skiff image import: %v\n%s", err, out)
	}
	if err := until(150, func() error {
		if ok, err := registryHas(ctx, servers[1], "exit0", "1", true); err != nil || !ok {
			return fmt.Errorf("server 2's registry has exit0:1: %v, %v", ok, err)
		}
		return nil
	}); err != nil {
		t.Fatalf("fan-out: %v", err)
	}
	t.Logf("fan-out: exit0:1 (700 KiB) in server 2's registry %v after the import began", time.Since(imported).Round(time.Millisecond))

	runPinned := func(s *clusterServer, pod string) {
		t.Helper()
		_, err := servers[0].cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod},
			Spec: corev1.PodSpec{NodeName: s.name, RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "c", Image: "exit0:1"}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var last *corev1.Pod
		if err := until(300, func() error {
			p, err := servers[0].cs.CoreV1().Pods("default").Get(ctx, pod, metav1.GetOptions{})
			if err != nil {
				return err
			}
			last = p
			if p.Status.Phase != corev1.PodSucceeded {
				return fmt.Errorf("phase %s", p.Status.Phase)
			}
			return nil
		}); err != nil {
			t.Fatalf("pod %s on %s: %v; status %+v", pod, s.name, err, last.Status)
		}
		t.Logf("pod %s on %s Succeeded after %v", pod, s.name, time.Since(start).Round(time.Millisecond))
	}
	runPinned(servers[1], "on-reg-2")

	servers[2].start(t)
	if ok, err := registryHas(ctx, servers[2], "exit0", "1", true); err != nil || ok {
		t.Fatalf("server 3's own registry has exit0:1 after a restart: %v, %v; it was down during the import", ok, err)
	}
	runPinned(servers[2], "on-reg-3")
	// The pod's pull went over the bus, which may have carried it to
	// another server's registry; asking server 3's API port settles it.
	if ok, err := registryHas(ctx, servers[2], "exit0", "1", false); err != nil || !ok {
		t.Fatalf("server 3's registry, asking its peers: %v, %v; want exit0:1 pulled through", ok, err)
	}
	if ok, err := registryHas(ctx, servers[2], "exit0", "1", true); err != nil || !ok {
		t.Fatalf("server 3's own registry after pull-through: %v, %v; want it stored there", ok, err)
	}
	// What no server has stays a 404 (every peer asked, none has it).
	if ok, err := registryHas(ctx, servers[2], "nowhere", "1", false); err != nil || ok {
		t.Fatalf("server 3's registry has nowhere:1: %v, %v; want a 404", ok, err)
	}
}
