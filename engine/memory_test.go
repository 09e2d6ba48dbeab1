package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/sleeper"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/runtime/wasm"
)

// vmRSS is this process's resident memory in bytes, after a GC that hands
// the Go heap's free pages back to the system: what is left is what the
// process really holds.
func vmRSS(t *testing.T) int64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	return rawRSS(t)
}

// rawRSS is this process's resident memory in bytes as it stands.
func rawRSS(t *testing.T) int64 {
	t.Helper()
	n, err := testutil.ResidentBytes()
	if errors.Is(err, testutil.ErrNoProcStatus) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// deletePods deletes the pods at once and waits until they are gone.
func deletePods(t *testing.T, cs kubernetes.Interface, names ...string) {
	t.Helper()
	ctx := context.Background()
	for _, n := range names {
		if err := cs.CoreV1().Pods("default").Delete(ctx, n, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		testutil.Eventually(t, 60*time.Second, func() error {
			_, err := cs.CoreV1().Pods("default").Get(ctx, n, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("pod %s still there (%v)", n, err)
		})
	}
}

func bombPod(name, image string, maxMiB int) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{Name: "bomb", Image: image, Args: []string{strconv.Itoa(maxMiB)}}}}}
}

// TestWasmPodWithoutLimitIsBoundedAndReturnsMemory is the memory hardening's
// acceptance test: a memory bomb in a pod that sets no memory limit ends
// OOMKilled at the node's default limit (64 MiB here), and once the pod is
// gone the engine's resident memory is back within a small margin of what it
// was before, already before debug.FreeOSMemory. The bomb stops by itself at 256 MiB, so where the default is
// not applied the test fails (the pod ends with exit code 3) instead of
// growing without bound.
func TestWasmPodWithoutLimitIsBoundedAndReturnsMemory(t *testing.T) {
	const (
		defaultLimit = 64 << 20
		bombMiB      = 256      // the bomb's own stop: the test's worst case
		margin       = 32 << 20 // what the engine may keep after the pod is gone
	)
	host := testRegistry(t, map[string][]byte{"membomb:1": testGuest(t, "membomb")})
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "mem-1", DefaultPodMemoryLimit: defaultLimit})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	image := host + "/membomb:1"

	// A small run first, so that the pull, the compilation and the engine's
	// caches are in place before the measurement starts.
	if _, err := cs.CoreV1().Pods("default").Create(ctx, bombPod("warm", image, 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, cs, "default", "warm", 60*time.Second, "finishes", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	deletePods(t, cs, "warm")
	before := vmRSS(t)

	bomb := bombPod("bomb", image, bombMiB)
	if _, err := cs.CoreV1().Pods("default").Create(ctx, bomb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var peak int64
	p := waitPod(t, cs, "default", "bomb", 120*time.Second, "finishes", func(p *corev1.Pod) bool {
		peak = max(peak, rawRSS(t))
		return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
	})
	term := p.Status.ContainerStatuses[0].State.Terminated
	if term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Fatalf("the bomb without a limit ended %+v, want OOMKilled with exit code 137 at the node's default limit", p.Status.ContainerStatuses[0].State)
	}
	if want := fmt.Sprintf("memory limit of %d bytes reached", defaultLimit); !strings.Contains(term.Message, want) {
		t.Errorf("message %q does not say %q", term.Message, want)
	}
	// The pod's spec keeps what its user wrote: no limit.
	if l := p.Spec.Containers[0].Resources.Limits; len(l) != 0 {
		t.Errorf("the pod's spec changed: limits %v", l)
	}
	deletePods(t, cs, "bomb")
	// Before any forced return: the guest's memory was unmapped when its
	// instance ended, where Go-heap memory would wait for the scavenger.
	runtime.GC()
	unforced := rawRSS(t)
	after := vmRSS(t)
	t.Logf("engine RSS: before the bomb %d MiB, peak while it ran %d MiB (sampled), after it was gone %d MiB (%d MiB before debug.FreeOSMemory; limit %d MiB, margin %d MiB)",
		before>>20, peak>>20, after>>20, unforced>>20, defaultLimit>>20, margin>>20)
	if after > before+margin {
		t.Errorf("RSS after the pod is gone is %d MiB, %d MiB over the %d MiB before: the memory was not given back",
			after>>20, (after-before)>>20, before>>20)
	}
	// Linear memory in the Go heap (the allocator before mapped memory)
	// left 130 MiB here until debug.FreeOSMemory forced it back.
	if unforced > before+margin {
		t.Errorf("RSS right after the pod is gone is %d MiB, %d MiB over the %d MiB before: the memory waits for the Go runtime instead of going back when the instance ends",
			unforced>>20, (unforced-before)>>20, before>>20)
	}
}

// TestWasmPodMemoryOverhead measures (and logs; timings and sizes are not
// asserted beyond a loose bound) what the engine holds per idle pod at a
// 64 MiB limit, beside the pods' own linear memory: 20 pods of the smallest
// idle module (one 64 KiB page: the rest is the engine's) and 20 of a Go
// guest asleep.
func TestWasmPodMemoryOverhead(t *testing.T) {
	const (
		pods  = 20
		limit = 64 << 20
	)
	host := testRegistry(t, map[string][]byte{"tiny:1": sleeper.Module(), "gosleeper:1": testGuest(t, "sleeper")})
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "mem-2", MaxPods: 2*pods + 10})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lim := corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: *resource.NewQuantity(limit, resource.BinarySI)}}
	run := func(prefix, image string, n int) []string {
		var names []string
		for i := range n {
			name := fmt.Sprintf("%s-%d", prefix, i)
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "main", Image: image, Resources: lim}}}}
			if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		}
		for _, name := range names {
			waitPod(t, cs, "default", name, 120*time.Second, "runs", func(p *corev1.Pod) bool {
				return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
			})
		}
		return names
	}
	for _, tc := range []struct {
		name, image string
		own         int64 // the guest's linear memory
	}{
		{"smallest module", host + "/tiny:1", 64 << 10},
		{"Go guest", host + "/gosleeper:1", goSleeperMemory(t)},
	} {
		// One pod first: pull and compile outside the measurement.
		deletePods(t, cs, run("warm", tc.image, 1)...)
		before := vmRSS(t)
		names := run("idle", tc.image, pods)
		time.Sleep(time.Second) // let the guests settle into their sleep
		during := vmRSS(t)
		perPod := (during - before) / pods
		// The guest's linear memory is an upper bound of its resident part
		// (pages it never touched are not resident), so this is a lower
		// bound of the engine's own share; with the smallest module the
		// guest holds one page and the rest is the engine's.
		overhead := perPod - tc.own
		t.Logf("%s, %d idle pods at a %d MiB limit: RSS %d MiB before, %d MiB with them: %d KiB per pod (%.2f%% of the limit); "+
			"the guest's linear memory is %d KiB, leaving %d KiB for the engine",
			tc.name, pods, limit>>20, before>>20, during>>20, perPod>>10, 100*float64(perPod)/limit, tc.own>>10, overhead>>10)
		// A loose bound, far above what is measured: the was 10% of
		// the limit, and the old allocator held about 2.5 times the limit.
		if overhead > limit/10 {
			t.Errorf("%s: the engine holds %d KiB per pod beside the guest's memory, over 10%% of the %d MiB limit", tc.name, overhead>>10, limit>>20)
		}
		deletePods(t, cs, names...)
	}
}

// goSleeperMemory is the linear memory a Go guest asleep holds: the
// testdata sleeper run once directly in wazero, metered.
func goSleeperMemory(t *testing.T) int64 {
	t.Helper()
	ctx := context.Background()
	rt, err := wasm.New(ctx, wasm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	mod, err := rt.Compile(ctx, testGuest(t, "sleeper"))
	if err != nil {
		t.Fatal(err)
	}
	var meter wasm.Meter
	started := make(chan struct{})
	var once sync.Once
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = rt.Run(runCtx, mod, wasm.RunSpec{Args: []string{"sleeper"}, Meter: &meter, MemoryLimitBytes: 64 << 20,
			Stdout: writerFunc(func(p []byte) (int, error) { once.Do(func() { close(started) }); return len(p), nil })})
	}()
	select {
	case <-started:
	case <-time.After(60 * time.Second):
		t.Fatal("the Go sleeper did not start")
	}
	n := meter.Bytes()
	cancel()
	<-done
	return n
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
