package agent

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiffhq/skiff/internal/node/protocol"
)

func reportTestReporter() *reporter {
	return newReporter(&Agent{cfg: Config{NodeName: "node-r"}})
}

func podStatus(uid string, phase corev1.PodPhase) protocol.PodStatus {
	return protocol.PodStatus{Namespace: "ns", Name: "pod-" + uid, UID: uid, Status: corev1.PodStatus{Phase: phase}}
}

func uids(rep protocol.StatusReport) []string {
	var out []string
	for _, ps := range rep.Pods {
		out = append(out, ps.UID)
	}
	return out
}

func TestReporterTakeBatchesInOrder(t *testing.T) {
	r := reportTestReporter()
	const pods = 2*maxReportPods + 50
	for i := range pods {
		r.status(podStatus(fmt.Sprintf("u%04d", i), corev1.PodPending))
	}
	// A newer status of a queued pod replaces it in place.
	r.status(podStatus("u0003", corev1.PodRunning))

	next := 0
	for batch := 0; ; batch++ {
		if batch > pods {
			t.Fatal("take never drained the queue")
		}
		rep := r.take()
		if rep.Node != "node-r" {
			t.Fatalf("report for node %q", rep.Node)
		}
		if len(rep.Pods) == 0 {
			break
		}
		if len(rep.Pods) > maxReportPods {
			t.Fatalf("batch of %d statuses, over %d", len(rep.Pods), maxReportPods)
		}
		for _, ps := range rep.Pods {
			if want := fmt.Sprintf("u%04d", next); ps.UID != want {
				t.Fatalf("status %s where %s was due", ps.UID, want)
			}
			wantPhase := corev1.PodPending
			if ps.UID == "u0003" {
				wantPhase = corev1.PodRunning
			}
			if ps.Status.Phase != wantPhase {
				t.Errorf("%s sent with phase %s, want %s", ps.UID, ps.Status.Phase, wantPhase)
			}
			next++
		}
	}
	if next != pods {
		t.Errorf("%d statuses sent, want %d (each pod once)", next, pods)
	}
	if rep := r.take(); len(rep.Pods) != 0 || len(rep.Events) != 0 {
		t.Errorf("an empty queue gave %+v", rep)
	}
}

func TestReporterPutBack(t *testing.T) {
	r := reportTestReporter()
	for _, uid := range []string{"a", "b", "c", "d"} {
		r.status(podStatus(uid, corev1.PodPending))
	}
	failed := r.take() // the batch whose request failed

	// While it was on its way: b changed, e appeared.
	r.status(podStatus("b", corev1.PodRunning))
	r.status(podStatus("e", corev1.PodPending))
	r.putBack(failed, []string{"c"}) // the control plane says c is gone

	rep := r.take()
	got := map[string]corev1.PodPhase{}
	for _, ps := range rep.Pods {
		if _, dup := got[ps.UID]; dup {
			t.Errorf("%s queued twice", ps.UID)
		}
		got[ps.UID] = ps.Status.Phase
	}
	want := map[string]corev1.PodPhase{"a": corev1.PodPending, "b": corev1.PodRunning, "d": corev1.PodPending, "e": corev1.PodPending}
	if len(got) != len(want) {
		t.Errorf("requeued %v, want %v", got, want)
	}
	for uid, phase := range want {
		if got[uid] != phase {
			t.Errorf("%s: phase %q, want %q (a newer status is never overwritten)", uid, got[uid], phase)
		}
	}
	if _, ok := got["c"]; ok {
		t.Error("a gone pod was requeued")
	}
}

func TestReporterEvents(t *testing.T) {
	r := reportTestReporter()
	for i := range maxQueuedEvents + 10 {
		r.event(protocol.Event{Pod: "p", Reason: fmt.Sprintf("e%d", i)})
	}
	r.mu.Lock()
	queued := len(r.events)
	r.mu.Unlock()
	if queued != maxQueuedEvents {
		t.Fatalf("%d events queued, want the cap %d", queued, maxQueuedEvents)
	}

	// Batches of at most maxReportEvents, oldest first; the events over
	// the cap (the newest) were dropped.
	seen := 0
	for range maxQueuedEvents {
		rep := r.take()
		if len(rep.Events) == 0 {
			break
		}
		if len(rep.Events) > maxReportEvents {
			t.Fatalf("batch of %d events, over %d", len(rep.Events), maxReportEvents)
		}
		for _, ev := range rep.Events {
			if want := fmt.Sprintf("e%d", seen); ev.Reason != want {
				t.Fatalf("event %s where %s was due", ev.Reason, want)
			}
			if ev.Time.IsZero() {
				t.Errorf("event %s has no time", ev.Reason)
			}
			seen++
		}
	}
	if seen != maxQueuedEvents {
		t.Errorf("%d events sent, want %d", seen, maxQueuedEvents)
	}

	// An event's own time is kept.
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	r.event(protocol.Event{Reason: "timed", Time: at})
	if rep := r.take(); len(rep.Events) != 1 || !rep.Events[0].Time.Equal(at) {
		t.Errorf("event time not kept: %+v", rep.Events)
	}
}

func TestReporterPutBackEvents(t *testing.T) {
	r := reportTestReporter()
	for i := range 3 {
		r.event(protocol.Event{Reason: fmt.Sprintf("e%d", i)})
	}
	failed := r.take()
	r.event(protocol.Event{Reason: "e3"})
	r.putBack(failed, nil)
	rep := r.take()
	var got []string
	for _, ev := range rep.Events {
		got = append(got, ev.Reason)
	}
	if fmt.Sprint(got) != "[e0 e1 e2 e3]" {
		t.Errorf("events after putBack %v, want the failed batch first, in order", got)
	}

	// A failed batch that would take the queue over its cap is dropped.
	for i := range maxQueuedEvents {
		r.event(protocol.Event{Reason: fmt.Sprintf("f%d", i)})
	}
	r.putBack(rep, nil)
	r.mu.Lock()
	queued := len(r.events)
	r.mu.Unlock()
	if queued != maxQueuedEvents {
		t.Errorf("%d events queued after putBack on a full queue, want the cap %d", queued, maxQueuedEvents)
	}
}

func TestReporterWakes(t *testing.T) {
	r := reportTestReporter()
	for range 3 { // many changes, one pending wake-up, never blocking
		r.status(podStatus("a", corev1.PodPending))
		r.event(protocol.Event{Reason: "x"})
	}
	select {
	case <-r.kick:
	default:
		t.Fatal("a status did not wake the sender")
	}
	select {
	case <-r.kick:
		t.Fatal("more than one wake-up pending")
	default:
	}
}
