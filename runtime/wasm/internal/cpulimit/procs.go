package cpulimit

import (
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A goroutine whose thread the kernel throttles keeps its Go scheduler P
// while it waits for quota: Go takes a P back only from a thread in a
// system call, and asks a running goroutine to give its P up, which a
// throttled one cannot do until it runs again. So every limited guest busy
// in a call holds one of GOMAXPROCS Ps most of the time while using a tenth
// of a core; with as many such guests as Ps, the rest of the process (the
// engine, the other pods) waited tens of milliseconds for each wake-up, and
// the limited guests together got far less CPU than their limits allow.
//
// procs gives those Ps back: GOMAXPROCS is raised by the number of limited
// Threads inside a call (sampled every procsTick, at most procsCap), so the
// program keeps the Ps it set for its own goroutines. Raising is done at the
// next tick; lowering waits until fewer were needed for procsHold, because
// each change stops the world, and a stop-the-world waits for throttled
// threads. A program that changes GOMAXPROCS itself is followed: its new
// value becomes the base. See docs/rationale.md for the measurements.
var procs procState

const (
	procsTick = 100 * time.Millisecond
	procsHold = 2 * time.Second
)

// procsCap bounds the Ps added: each P adds to the GC's dedicated mark
// workers (a quarter of GOMAXPROCS), which would then outnumber the cores
// during marking.
func procsCap() int { return 8 * goruntime.NumCPU() }

type procState struct {
	inCall atomic.Int64 // counted Threads inside a call now
	peak   atomic.Int64 // the most inside a call since the last tick

	mu      sync.Mutex
	threads int  // counted Threads alive; the loop runs while > 0 or extra > 0
	running bool // the loop's goroutine exists
	extra   int  // Ps added
	set     int  // GOMAXPROCS as last set here; 0 before any change
}

// threadStarted and threadStopped count a limited Thread's life.
func (p *procState) threadStarted() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.threads++
	if !p.running {
		p.running = true
		go p.loop()
	}
}

func (p *procState) threadStopped() {
	p.mu.Lock()
	p.threads--
	p.mu.Unlock()
}

func (p *procState) enter() {
	n := p.inCall.Add(1)
	for {
		old := p.peak.Load()
		if n <= old || p.peak.CompareAndSwap(old, n) {
			return
		}
	}
}

func (p *procState) exit() { p.inCall.Add(-1) }

func (p *procState) loop() {
	t := time.NewTicker(procsTick)
	defer t.Stop()
	var lowSince time.Time // when fewer Ps than added started to be enough
	wantMax := 0           // the most needed since lowSince
	for range t.C {
		// The peak of the last tick, and at least those inside a call now.
		want := int(max(p.peak.Swap(p.inCall.Load()), p.inCall.Load()))
		want = min(want, procsCap())
		p.mu.Lock()
		cur := goruntime.GOMAXPROCS(0)
		if p.set != 0 && cur != p.set {
			// The program set GOMAXPROCS itself: that is its base now.
			p.extra, p.set = 0, 0
		}
		base := cur - p.extra
		switch {
		case want > p.extra:
			p.apply(base, want)
			lowSince = time.Time{}
		case want < p.extra:
			if lowSince.IsZero() {
				lowSince, wantMax = time.Now(), want
			}
			wantMax = max(wantMax, want)
			if time.Since(lowSince) >= procsHold {
				p.apply(base, wantMax)
				lowSince = time.Time{}
			}
		default:
			lowSince = time.Time{}
		}
		if p.threads == 0 && p.extra == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}

// apply sets GOMAXPROCS to base+extra; p.mu is held.
func (p *procState) apply(base, extra int) {
	p.extra = extra
	p.set = base + extra
	goruntime.GOMAXPROCS(p.set)
}

// Extra is how many Ps this package has added to GOMAXPROCS now.
func Extra() int {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	return procs.extra
}
