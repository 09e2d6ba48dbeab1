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
	"github.com/skiffhq/skiff/internal/node/protocol"
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

// leader plays the control plane's lifecycle controller: it acknowledges
// the node's heartbeats until stopped.
func leader(t *testing.T, ctx context.Context, srv *bus.Server) func() {
	t.Helper()
	cp, err := srv.Connect(ctx, "control-plane")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := bus.SubscribeAcked(ctx, cp, bus.SubjectHeartbeatAny, func(context.Context, string, protocol.Heartbeat, func()) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return func() { sub.Stop(); cp.Close() }
}

// The fence: an agent whose heartbeats the control plane acknowledges runs
// everything; cut off from it (here the bus stays up but nobody on it
// acknowledges, as when the agent's server is cut off from the raft
// leader) it keeps its pods for FenceTimeout, then stops its StatefulSet
// pods only, starts none while fenced, and lowers the fence at the next
// acknowledged heartbeat. Losing the bus itself fences too.
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
	subject, err := bus.SubjectHeartbeat("n")
	if err != nil {
		t.Fatal(err)
	}
	beatUntilFenced := func() time.Duration {
		t.Helper()
		start := time.Now()
		a.sendHeartbeat(ctx, subject)
		if a.Fenced() {
			t.Fatal("fenced at the first unacknowledged heartbeat, before the fence timeout")
		}
		// As the heartbeat loop would, bounded: 200 rounds of at most a
		// 50ms wait for the acknowledgement and a 20ms pause.
		for i := 0; i < 200 && !a.Fenced(); i++ {
			a.sendHeartbeat(ctx, subject)
			time.Sleep(20 * time.Millisecond)
		}
		if !a.Fenced() {
			t.Fatal("not fenced after being cut off")
		}
		return time.Since(start)
	}

	stop := leader(t, ctx, srv)
	for range 3 {
		a.sendHeartbeat(ctx, subject)
	}
	if a.Fenced() || sts.ctx.Err() != nil {
		t.Fatal("fenced while in contact")
	}

	stop() // the control plane is gone; the bus is not
	after := beatUntilFenced()
	if after < timeout {
		t.Fatalf("fenced %v after the cut, before the %v fence timeout", after, timeout)
	}
	t.Logf("fenced %v after the control plane went (fence timeout %v)", after.Round(time.Millisecond), timeout)
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

	// The control plane is back: the next acknowledged heartbeat lowers it.
	defer leader(t, ctx, srv)()
	a.sendHeartbeat(ctx, subject)
	if a.Fenced() {
		t.Fatal("still fenced in contact with the control plane")
	}
	a.pods.mu.Lock()
	fenced := a.pods.fenced
	a.pods.mu.Unlock()
	if fenced {
		t.Fatal("the pod manager still holds StatefulSet pods back")
	}

	// The bus itself gone: fenced as well.
	ownedPod(a, "sts2", "StatefulSet")
	srv.Close()
	beatUntilFenced()
}
