package agent

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/testutil"
)

// fenceBus starts a real embedded bus and connects to it as an agent would.
func fenceBus(t *testing.T, ctx context.Context, name string) (*bus.Server, *bus.Conn) {
	t.Helper()
	srv, err := bus.Start(ctx, bus.Config{Name: name, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	conn, err := srv.Connect(ctx, "agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return srv, conn
}

// ownedPod is a running pod worker whose pod a controller of kind owns; its
// done closes when it is killed, as a real worker's does once its
// containers stopped.
func ownedPod(a *Agent, uid, kind string) *podWorker {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pod-" + uid, Namespace: "ns", UID: types.UID(uid),
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: "owner", UID: "o", Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "i"}}}}
	w := a.newPodWorker(p)
	go func() {
		<-w.ctx.Done()
		close(w.done)
	}()
	a.pods.workers[uid] = w
	a.pods.want[uid] = true
	return w
}

// The fence: an agent in contact with its bus runs everything; cut off (the
// bus's server gone) it keeps its pods for FenceTimeout, then stops its
// StatefulSet pods only, starts none while fenced, and lowers the fence
// when a round trip to a server succeeds again.
func TestFenceStopsStatefulSetPodsWhenCutOff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, conn := fenceBus(t, ctx, "fence-test")
	const timeout = 400 * time.Millisecond
	a := &Agent{cfg: Config{NodeName: "n", DataDir: t.TempDir(), Bus: conn, HeartbeatInterval: 50 * time.Millisecond,
		FenceTimeout: timeout}, log: slog.New(slog.DiscardHandler), heartbeatNow: make(chan struct{}, 1), runCtx: ctx}
	a.reports = newReporter(a)
	a.pods = newPodManager(a)
	sts := ownedPod(a, "sts", "StatefulSet")
	rs := ownedPod(a, "rs", "ReplicaSet")

	for range 3 {
		a.checkContact()
	}
	if a.Fenced() || sts.ctx.Err() != nil {
		t.Fatal("fenced while in contact")
	}

	srv.Close() // cut off from every server
	cut := time.Now()
	a.checkContact()
	if a.Fenced() || sts.ctx.Err() != nil {
		t.Fatal("fenced at the first failed round trip, before the fence timeout")
	}
	// Checked as the heartbeat loop would, bounded: 200 rounds of at most
	// a 50ms round trip and a 20ms pause.
	for i := 0; i < 200 && !a.Fenced(); i++ {
		a.checkContact()
		time.Sleep(20 * time.Millisecond)
	}
	fencedAfter := time.Since(cut)
	if !a.Fenced() {
		t.Fatal("not fenced after being cut off")
	}
	if fencedAfter < timeout {
		t.Fatalf("fenced %v after the cut, before the %v fence timeout", fencedAfter, timeout)
	}
	t.Logf("fenced %v after the cut (fence timeout %v)", fencedAfter.Round(time.Millisecond), timeout)
	if sts.ctx.Err() == nil {
		t.Fatal("the StatefulSet pod still runs behind the fence")
	}
	if rs.ctx.Err() != nil {
		t.Fatal("the ReplicaSet pod was stopped: edge autonomy keeps it")
	}
	sts.mu.Lock()
	grace := sts.grace
	sts.mu.Unlock()
	if grace != 0 {
		t.Errorf("the StatefulSet pod stopped with %v grace, want none", grace)
	}

	// While fenced, a sync does not start the StatefulSet pod again.
	delete(a.pods.workers, "sts")
	a.pods.sync([]corev1.Pod{*sts.pod})
	if a.pods.workers["sts"] != nil {
		t.Fatal("a StatefulSet pod started behind the fence")
	}

	// Contact again (a server is back): the fence goes down.
	_, conn2 := fenceBus(t, ctx, "fence-test-2")
	a.cfg.Bus = conn2
	a.checkContact()
	if a.Fenced() {
		t.Fatal("still fenced in contact with a server")
	}
	a.pods.mu.Lock()
	fenced := a.pods.fenced
	a.pods.mu.Unlock()
	if fenced {
		t.Fatal("the pod manager still holds StatefulSet pods back")
	}
}
