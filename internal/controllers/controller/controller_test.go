package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/testutil"
)

func pod(name string, mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.Unix(1000, 0)},
		Spec: corev1.PodSpec{NodeName: "n"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func ready(since int64) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue,
			LastTransitionTime: metav1.Unix(since, 0)}}
	}
}

// Each rule of the scale-down order, as a pair where the first pod goes
// first.
func TestSortForDeletion(t *testing.T) {
	for _, tc := range []struct {
		rule          string
		first, second *corev1.Pod
	}{
		{"unscheduled first", pod("a", func(p *corev1.Pod) { p.Spec.NodeName = ""; ready(1)(p) }), pod("b", ready(1))},
		{"pending before running", pod("a", func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }), pod("b", nil)},
		{"not ready before ready", pod("a", nil), pod("b", ready(1))},
		{"lower deletion cost first", pod("a", func(p *corev1.Pod) {
			ready(1)(p)
			p.Annotations = map[string]string{PodDeletionCostAnnotation: "-5"}
		}), pod("b", ready(1))},
		{"ready for less time first", pod("a", ready(2000)), pod("b", ready(1500))},
		{"more restarts first", pod("a", func(p *corev1.Pod) {
			ready(1)(p)
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{RestartCount: 3}}
		}), pod("b", ready(1))},
		{"newer first", pod("a", func(p *corev1.Pod) { p.CreationTimestamp = metav1.Unix(2000, 0) }), pod("b", nil)},
	} {
		for _, in := range [][]*corev1.Pod{{tc.first, tc.second}, {tc.second, tc.first}} {
			pods := append([]*corev1.Pod(nil), in...)
			SortForDeletion(pods)
			if pods[0] != tc.first {
				t.Errorf("%s: %s sorted before %s", tc.rule, pods[0].Name, pods[1].Name)
			}
		}
	}
}

func TestIsPodAvailable(t *testing.T) {
	now := time.Unix(1010, 0)
	p := pod("a", ready(1000))
	if !IsPodAvailable(p, 0, now) || !IsPodAvailable(p, 9, now) || IsPodAvailable(p, 10, now) || IsPodAvailable(pod("b", nil), 0, now) {
		t.Fatal("availability around minReadySeconds")
	}
}

func TestExpectations(t *testing.T) {
	e := NewExpectations()
	if !e.Satisfied("rs") {
		t.Fatal("nothing expected, not satisfied")
	}
	e.ExpectCreations("rs", 2)
	e.CreationObserved("rs")
	if e.Satisfied("rs") {
		t.Fatal("satisfied with a creation outstanding")
	}
	e.CreationObserved("rs")
	if !e.Satisfied("rs") {
		t.Fatal("not satisfied after both creations")
	}
	e.ExpectDeletions("rs", []string{"ns/a", "ns/b"})
	e.DeletionObserved("rs", "ns/a")
	e.DeletionObserved("rs", "ns/other") // not awaited: no effect
	if e.Satisfied("rs") {
		t.Fatal("satisfied with a deletion outstanding")
	}
	e.DeletionObserved("rs", "ns/b")
	if !e.Satisfied("rs") {
		t.Fatal("not satisfied after both deletions")
	}
	e.ExpectCreations("gone", 1)
	e.Delete("gone")
	if !e.Satisfied("gone") {
		t.Fatal("deleted key still waits")
	}
}

// The gate runs the loops only while leading, stops them on losing
// leadership, starts them again on regaining it (or on Restart), and
// retries a failed start.
func TestLeaderGate(t *testing.T) {
	var leader atomic.Bool
	var mu sync.Mutex
	var running, starts int
	failFirst := true
	g := &LeaderGate{Leader: leader.Load, Interval: 5 * time.Millisecond, Log: testutil.Logger(t),
		Run: func(ctx context.Context) error {
			mu.Lock()
			starts++
			if failFirst {
				failFirst = false
				mu.Unlock()
				return errors.New("not yet")
			}
			running++
			mu.Unlock()
			<-ctx.Done()
			mu.Lock()
			running--
			mu.Unlock()
			return nil
		}}
	stop := g.Start(5 * time.Second)
	state := func(wantRunning, minStarts int) func() error {
		return func() error {
			mu.Lock()
			defer mu.Unlock()
			if running != wantRunning || starts < minStarts {
				return fmt.Errorf("running %d, starts %d", running, starts)
			}
			return nil
		}
	}
	time.Sleep(20 * time.Millisecond) // a few polls while not leader: nothing may start
	mu.Lock()
	if starts != 0 {
		t.Fatalf("started %d times without leadership", starts)
	}
	mu.Unlock()
	leader.Store(true)
	testutil.Eventually(t, 5*time.Second, state(1, 2)) // a failed start, then a good one
	leader.Store(false)
	testutil.Eventually(t, 5*time.Second, state(0, 2))
	leader.Store(true)
	testutil.Eventually(t, 5*time.Second, state(1, 3))
	g.Restart() // a fresh term while still leading
	testutil.Eventually(t, 5*time.Second, state(1, 4))
	stop()
	testutil.Eventually(t, time.Second, state(0, 4))
}
