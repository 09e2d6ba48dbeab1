// Package cpulimit holds Wasm guests to a CPU limit and measures the CPU
// time they use.
//
// wazero compiles a guest to native code that Go cannot preempt for long
// and that has no fuel metering, so nothing inside the process can take the
// CPU back from a guest that spins. The kernel can: each guest call runs on
// an OS thread of its own (a goroutine locked to its thread), and a limited
// workload's threads are put, one thread ID at a time, in a cgroup of the
// cpu controller whose CFS bandwidth quota is the limit (cgroup v1 accepts
// single threads in `tasks`). Such a thread never returns to the Go
// scheduler's pool: its goroutine exits while still locked, and Go then ends
// the thread, so no other goroutine ever runs throttled.
//
// CPU time is measured per thread, with the kernel's per-thread CPU clocks
// (clock_gettime on a thread's CPU clock, nanoseconds of sum_exec_runtime),
// so it needs no cgroup and works without privilege; a Meter adds up the
// threads that ran one workload's guest code.
//
// docs/rationale.md ("How are CPU limits held, and why by the kernel?")
// has the measured precision and what a throttled thread costs the rest of
// the engine.
package cpulimit

import (
	"errors"
	goruntime "runtime"
	"sync"
	"time"
)

// ErrUnsupported is wrapped by NewController's error where this platform
// has no way to limit a thread's CPU.
var ErrUnsupported = errors.New("cpu limits are not supported on this platform")

// Options of a Controller.
type Options struct {
	// KeepGOMAXPROCS leaves GOMAXPROCS alone: the Ps that limited threads
	// hold while throttled are then taken from the program's (see procs).
	KeepGOMAXPROCS bool
}

// Meter adds up the CPU time of the OS threads that ran one workload's
// guest code: the threads that finished working for it, plus the threads
// working for it now, read live. The zero value is ready to use; all
// methods are safe for concurrent use.
type Meter struct {
	mu     sync.Mutex
	done   time.Duration
	active map[int]time.Duration // thread ID → its CPU clock when it began working for the meter
}

// Usage is the CPU time (user and system) used for the workload so far.
// It never decreases. Where threads' CPU clocks cannot be read (see
// Measured) it is 0.
func (m *Meter) Usage() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	total := m.done
	for tid, start := range m.active {
		// The thread cannot leave while the lock is held: it takes the
		// lock in end, before its goroutine unlocks or exits.
		if now, err := threadClock(tid); err == nil && now > start {
			total += now - start
		}
	}
	return total
}

// begin registers the calling thread, which must be locked to its
// goroutine, as working for m. ok is false when the thread already is (a
// nested Run) or its clock cannot be read; then end must not be called.
func (m *Meter) begin() (tid int, ok bool) {
	start, err := selfClock()
	if err != nil {
		return 0, false
	}
	tid = gettid()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, busy := m.active[tid]; busy {
		return 0, false
	}
	if m.active == nil {
		m.active = make(map[int]time.Duration)
	}
	m.active[tid] = start
	return tid, true
}

// end adds what the calling thread used since begin.
func (m *Meter) end(tid int) {
	now, err := selfClock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if start, ok := m.active[tid]; ok && err == nil && now > start {
		m.done += now - start
	}
	delete(m.active, tid)
}

// Run calls fn on the calling goroutine, locked to its OS thread for the
// call so that the thread's CPU clock counts fn and nothing else, and adds
// the CPU time to m. The thread is not limited: it goes back to the Go
// scheduler afterwards, as any thread.
func (m *Meter) Run(fn func()) {
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	tid, ok := m.begin()
	if ok {
		defer m.end(tid)
	}
	fn()
}

// Thread is a goroutine locked to an OS thread that runs the calls of one
// workload's guest, in the workload's Group when it has one. Its CPU time
// from start to Stop goes to a Meter. Calls are run one at a time.
type Thread struct {
	counted bool // by procs: a limited thread
	calls   chan func()
	results chan any // what each call panicked with, or nil
	stopped chan struct{}
}

// StartThread starts a Thread whose CPU time m counts. With a non-nil g the
// thread joins g first, and ends when the Thread stops; an error means it
// could not join (nothing runs, no thread is left behind in g).
func StartThread(g *Group, m *Meter) (*Thread, error) {
	t := &Thread{calls: make(chan func()), results: make(chan any), stopped: make(chan struct{}),
		counted: g != nil && g.addsProcs()}
	started := make(chan error, 1)
	go t.run(g, m, started)
	if err := <-started; err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Thread) run(g *Group, m *Meter, started chan<- error) {
	goruntime.LockOSThread()
	// Never unlocked (but below): when the goroutine returns still locked,
	// Go ends its thread instead of handing it to other goroutines, and
	// with the thread its membership of g ends. Exiting is the only way out
	// that cannot leave a throttled thread in the scheduler's pool (moving
	// it back to the parent cgroup could fail).
	if g != nil && isMainThread() {
		// The process's main thread must never be throttled: Go does not
		// end it when a goroutine locked to it exits, and it is the thread
		// whose cgroup the process is seen in. A goroutine started while
		// this one holds the main thread cannot run on it, so it takes over.
		handed := make(chan struct{})
		go func() {
			goruntime.LockOSThread()
			close(handed)
			t.work(g, m, started)
		}()
		<-handed
		goruntime.UnlockOSThread()
		return
	}
	t.work(g, m, started)
}

// work runs on the Thread's locked OS thread until Stop.
func (t *Thread) work(g *Group, m *Meter, started chan<- error) {
	defer close(t.stopped)
	if g != nil {
		if isMainThread() {
			started <- errors.New("cpulimit: a limited thread was about to be the main thread")
			return
		}
		if err := g.join(); err != nil {
			started <- err
			return
		}
	}
	if t.counted {
		procs.threadStarted()
		defer procs.threadStopped()
	}
	tid, ok := m.begin()
	started <- nil
	for fn := range t.calls {
		t.results <- call(fn)
	}
	if ok {
		m.end(tid)
	}
}

func call(fn func()) (panicked any) {
	defer func() { panicked = recover() }()
	fn()
	return nil
}

// Do runs fn on the thread and returns when it has returned; a panic in fn
// is raised again in the caller.
func (t *Thread) Do(fn func()) {
	if t.counted {
		procs.enter()
		defer procs.exit()
	}
	t.calls <- fn
	if p := <-t.results; p != nil {
		panic(p)
	}
}

// Stop ends the thread once its call in progress (if any) returned, and
// waits until its CPU time is in its Meter. Call it once, after the last Do.
func (t *Thread) Stop() {
	close(t.calls)
	<-t.stopped
}
