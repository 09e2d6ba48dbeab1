//go:build linux

package cpulimit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// controller returns a Controller, or skips with the reason there is none.
func controller(t *testing.T) *Controller {
	t.Helper()
	c, err := NewController(Options{})
	if err != nil {
		t.Skipf("CPU limits not enforced on this host: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Controller.Close: %v", err)
		}
		if _, err := os.Stat(c.Dir()); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left behind (%v)", c.Dir(), err)
		}
	})
	return c
}

// spin runs a Go loop on th until stop is set.
func spin(th *Thread, stop *atomic.Bool) {
	th.Do(func() {
		for n := 0; !stop.Load(); n++ {
		}
	})
}

// spinFor spins on a new Thread in g (nil: none) for d and returns the CPU
// time its Meter saw, per second of wall time.
func spinFor(t *testing.T, g *Group, d time.Duration) float64 {
	t.Helper()
	var m Meter
	th, err := StartThread(g, &m)
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		spin(th, &stop)
	}()
	time.Sleep(d)
	live := m.Usage()
	stop.Store(true)
	<-done
	wall := time.Since(start)
	th.Stop()
	final := m.Usage()
	if final < live {
		t.Errorf("Usage went down from %v (live) to %v (final)", live, final)
	}
	return final.Seconds() / wall.Seconds()
}

// TestThreadHeldToLimit: a Go loop on a Thread in a group uses its limit's
// share of a core (within 0.05 of a core over 1.5 s, for limits from 50m
// to 500m); the same loop without a group uses far more.
func TestThreadHeldToLimit(t *testing.T) {
	c := controller(t)
	free := spinFor(t, nil, time.Second)
	t.Logf("unlimited: %.3f CPU-s/s", free)
	for _, millis := range []int64{50, 100, 250, 500} {
		g, err := c.NewGroup(millis)
		if err != nil {
			t.Fatal(err)
		}
		got := spinFor(t, g, 1500*time.Millisecond)
		st, err := g.Stats()
		if err != nil {
			t.Fatal(err)
		}
		want := float64(millis) / 1000
		t.Logf("%4dm: %.3f CPU-s/s (%+.3f); period %v; cpu.stat %+v", millis, got, got-want, g.Period, st)
		if got > want+0.05 {
			t.Errorf("%dm: the thread used %.3f CPU-s/s, want <= %.3f", millis, got, want+0.05)
		}
		if st.Throttled == 0 {
			t.Errorf("%dm: the group was never throttled: %+v", millis, st)
		}
		if err := g.Close(); err != nil {
			t.Error(err)
		}
	}
	// The control must at least tell 100m (and its margin) from contention.
	if free < 0.3 {
		t.Skipf("the machine is too busy for the control: an unlimited thread got only %.3f of a core", free)
	}
}

// TestGroupRemovedAfterThreads: a group whose threads have stopped can be
// closed at once, and the controller's directory goes with Close.
func TestGroupRemovedAfterThreads(t *testing.T) {
	c := controller(t)
	g, err := c.NewGroup(50)
	if err != nil {
		t.Fatal(err)
	}
	if g.Period != 20*time.Millisecond {
		t.Errorf("50m: period %v, want 20ms (a 1 ms quota)", g.Period)
	}
	var ths []*Thread
	for range 3 {
		th, err := StartThread(g, &Meter{})
		if err != nil {
			t.Fatal(err)
		}
		ths = append(ths, th)
	}
	b, err := os.ReadFile(filepath.Join(g.Dir(), "tasks"))
	if err != nil || len(b) == 0 {
		t.Fatalf("tasks of the group: %q, %v", b, err)
	}
	for _, th := range ths {
		th.Stop()
	}
	start := time.Now()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("group removed %v after its threads stopped", time.Since(start))
	if _, err := os.Stat(g.Dir()); !os.IsNotExist(err) {
		t.Errorf("group directory still there: %v", err)
	}
	// A group left open is removed by the controller's Close (cleanup).
	if _, err := c.NewGroup(2000); err != nil {
		t.Fatal(err)
	}
}

// TestThreadCosts measures what joining a group and handing a call to a
// Thread cost (logged, not asserted).
func TestThreadCosts(t *testing.T) {
	c := controller(t)
	g, err := c.NewGroup(1000)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	const n = 20
	start := time.Now()
	for range n {
		th, err := StartThread(g, &Meter{})
		if err != nil {
			t.Fatal(err)
		}
		th.Stop()
	}
	perThread := time.Since(start) / n
	th, err := StartThread(g, &Meter{})
	if err != nil {
		t.Fatal(err)
	}
	defer th.Stop()
	const calls = 2000
	start = time.Now()
	for range calls {
		th.Do(func() {})
	}
	perCall := time.Since(start) / calls
	var m Meter
	start = time.Now()
	for range calls {
		m.Run(func() {})
	}
	perRun := time.Since(start) / calls
	t.Logf("start+join+stop a thread: %v; a call handed to a thread: %v; a metered call on the caller's thread: %v", perThread, perCall, perRun)
}

// TestMeterWithoutGroup: a Meter measures without cgroups (no privilege
// needed): a busy call of ~50 ms of CPU reads as about that.
func TestMeterWithoutGroup(t *testing.T) {
	if !Measured {
		t.Skip("no per-thread CPU clocks on this platform")
	}
	var m Meter
	m.Run(func() {
		start, _ := selfClock()
		for {
			if now, _ := selfClock(); now-start >= 50*time.Millisecond {
				return
			}
		}
	})
	if u := m.Usage(); u < 50*time.Millisecond || u > 60*time.Millisecond {
		t.Errorf("Usage = %v, want 50ms and a little", u)
	}
}

// TestPanicReachesCaller: a panic in a call on a Thread is raised in Do's
// caller, and the Thread goes on serving.
func TestPanicReachesCaller(t *testing.T) {
	th, err := StartThread(nil, &Meter{})
	if err != nil {
		t.Fatal(err)
	}
	defer th.Stop()
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want boom", r)
			}
		}()
		th.Do(func() { panic("boom") })
	}()
	ran := false
	th.Do(func() { ran = true })
	if !ran {
		t.Error("the Thread stopped serving after a panic")
	}
}

// TestDegradesWithoutPrivilege: without the privilege to use the cpu
// controller, NewController says why, and a Meter still measures CPU time
// (per-thread clocks need no privilege). As root, the test runs itself
// again as the user nobody.
func TestDegradesWithoutPrivilege(t *testing.T) {
	if os.Getenv("CPULIMIT_UNPRIVILEGED_CHILD") == "1" || os.Geteuid() != 0 {
		unprivilegedChecks(t)
		return
	}
	if goruntime.GOOS != "linux" {
		t.Skip("runs itself again as another user on Linux only")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A copy nobody can read and run: the test binary's own directory is
	// root's.
	dir, err := os.MkdirTemp("", "skiff-cpulimit-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	child := filepath.Join(dir, "cpulimit.test")
	if err := os.WriteFile(child, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, child, "-test.run=^TestDegradesWithoutPrivilege$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "CPULIMIT_UNPRIVILEGED_CHILD=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("as nobody:\n%s", out)
	if err != nil {
		t.Fatalf("the unprivileged run failed: %v", err)
	}
}

func unprivilegedChecks(t *testing.T) {
	c, err := NewController(Options{})
	if err == nil {
		c.Close()
		t.Skip("this user may use the cpu controller (a delegated cgroup): nothing degrades")
	}
	t.Logf("CPU limits not enforced: %v", err)
	if !Measured {
		return
	}
	var m Meter
	m.Run(func() {
		start, _ := selfClock()
		for {
			if now, _ := selfClock(); now-start >= 30*time.Millisecond {
				return
			}
		}
	})
	if u := m.Usage(); u < 30*time.Millisecond {
		t.Errorf("Usage = %v without privilege, want at least 30ms", u)
	}
}
