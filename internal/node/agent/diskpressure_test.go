package agent

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/node/agent/nodestats"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// fakeDisk is a statfs answer the test sets, or an error.
type fakeDisk struct {
	st  nodestats.Disk
	err error
}

func testMonitor(d *fakeDisk, clock *time.Time) *diskMonitor {
	m := newDiskMonitor(Config{DataDir: "/node", DiskPressureAvailable: 0.10, DiskPressureInodesFree: 0.05,
		DiskPressureTransitionPeriod: 5 * time.Minute})
	m.statfs = func(string) (nodestats.Disk, error) { return d.st, d.err }
	m.now = func() time.Time { return *clock }
	return m
}

// TestDiskPressureDecision: the thresholds, the transition period, and a
// failing statfs, with a fake statfs and clock: no disk gets filled.
func TestDiskPressureDecision(t *testing.T) {
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	d := &fakeDisk{st: nodestats.Disk{Blocks: 1000, Available: 500, Inodes: 1000, FreeInodes: 500}}
	m := testMonitor(d, &clock)
	step := func(what string, want corev1.ConditionStatus, detail string) {
		t.Helper()
		c := m.condition()
		if c.Status != want || !strings.Contains(c.Message, detail) {
			t.Fatalf("%s: DiskPressure %s (%s: %s), want %s with %q", what, c.Status, c.Reason, c.Message, want, detail)
		}
	}
	step("half the disk free", corev1.ConditionFalse, "no disk pressure")
	d.st.Available = 99 // 9.9% < 10%
	step("9.9% available", corev1.ConditionTrue, "nodefs.available 9.9% < 10%")
	d.st.Available = 500
	clock = clock.Add(4 * time.Minute)
	step("freed, within the transition period", corev1.ConditionTrue, "nodefs.available")
	d.err = errors.New("nodestats.Statfs: I/O error")
	clock = clock.Add(time.Minute + time.Second)
	step("nodestats.Statfs fails after the period", corev1.ConditionFalse, "no disk pressure")
	d.err = nil
	d.st.FreeInodes = 40 // 4% < 5%
	step("inodes", corev1.ConditionTrue, "nodefs.inodesFree 4.0% < 5%")
	d.st.FreeInodes, d.st.Inodes = 0, 0 // a file system without inode counts
	clock = clock.Add(10 * time.Minute)
	step("no inode count", corev1.ConditionFalse, "no disk pressure")
	off := testMonitor(d, &clock)
	off.minAvailable, off.minInodesFree = -1, -1
	d.st.Available = 0
	if on, _ := off.check(); on {
		t.Error("a node with the checks turned off reported pressure")
	}
}

// TestDiskPressureRefusesNewPods: under pressure a new pod is rejected
// once, as the kubelet rejects it (Failed, Evicted, its wording); a
// system-critical pod is still admitted.
func TestDiskPressureRefusesNewPods(t *testing.T) {
	clock := time.Now()
	d := &fakeDisk{st: nodestats.Disk{Blocks: 1000, Available: 10, Inodes: 1000, FreeInodes: 500}}
	a := &Agent{cfg: Config{NodeName: "node-d"}, log: testLogger()}
	a.reports = newReporter(a)
	a.pods = newPodManager(a)
	a.disk = testMonitor(d, &clock)
	pod := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "late", UID: types.UID("u1")}}
	a.pods.sync([]corev1.Pod{pod})
	a.pods.sync([]corev1.Pod{pod}) // again, before the status has come back
	if n := a.pods.count(); n != 0 {
		t.Fatalf("%d pods started under disk pressure", n)
	}
	rep := a.reports.take()
	want := "The node had condition: [DiskPressure]. "
	if len(rep.Events) != 1 || rep.Events[0].Reason != "Evicted" || rep.Events[0].Message != want {
		t.Errorf("events %+v, want one Evicted %q", rep.Events, want)
	}
	if len(rep.Pods) != 1 {
		t.Fatalf("statuses %+v", rep.Pods)
	}
	st := rep.Pods[0].Status
	if st.Phase != corev1.PodFailed || st.Reason != "Evicted" || st.Message != "Pod was rejected: "+want {
		t.Errorf("status %s %s %q", st.Phase, st.Reason, st.Message)
	}
	critical := int32(systemCriticalPriority)
	crit := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "crit", UID: "u2"}, Spec: corev1.PodSpec{Priority: &critical}}
	if msg, ok := a.admitDisk(&crit); !ok {
		t.Errorf("a system-critical pod was refused: %s", msg)
	}
}

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
