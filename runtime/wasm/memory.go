package wasm

import (
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// Meter counts the linear memory of the instances it is given to (RunSpec.Meter,
// HandlerSpec.Meter): the bytes their memories have grown to, less those of
// instances that ended. The node agent reads it to rank pods for eviction by
// how far their use exceeds their request. Safe for concurrent use; the zero
// value is ready.
type Meter struct{ n atomic.Int64 }

// Bytes is the linear memory in use now.
func (m *Meter) Bytes() int64 {
	if m == nil {
		return 0
	}
	return m.n.Load()
}

func (m *Meter) add(d int64) {
	if m != nil {
		m.n.Add(d)
	}
}

// limitAllocator backs the linear memories of one instance and enforces its
// memory limit (see RunSpec.MemoryLimitBytes for why it is done here).
//
// On Linux each memory is an address range reserved once at its maximum
// (the limit, or the module's own maximum without one) and committed page by
// page as the guest grows it: growth never copies, nothing is reserved beyond
// the limit, and the end of the instance unmaps the range, which gives the
// memory back to the operating system at once (memory_linux.go). Elsewhere
// memories are Go slices (heapMemory).
//
// wazero calls Allocate and Reallocate only from the goroutine executing the
// guest (memories are not shared: the threads feature, and with it shared
// memory, is not enabled), and Run reads refused after the guest has
// stopped. Free may come from another goroutine (wazero's Runtime.Close
// closes the instances still alive), hence busy.
type limitAllocator struct {
	// limit is in bytes, a whole number of pages; 0 means none beyond the
	// module's own maximum.
	limit uint64
	// meter, when set, counts the bytes the memories have grown to.
	meter *Meter

	// refused records that a grow past the limit was refused: the evidence
	// for ReasonOOMKilled.
	refused bool
	// largestRefused is the largest size in bytes a refused grow asked for.
	largestRefused uint64
	// hostRefused records that the host could not commit memory below the
	// limit (the machine is out of memory): also OOMKilled, with its own
	// message.
	hostRefused bool

	mu sync.Mutex
	// busy counts the calls into the instance in progress (enter, leave).
	// A memory freed while the guest may still run on it is not unmapped
	// before the calls end (see mappedMemory.Free).
	busy int
	// deferred are the frees to finish once busy is back to zero.
	deferred []func()
}

// enter marks a call into the instance: until the matching leave, a Free
// keeps the memory mapped.
func (a *limitAllocator) enter() {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.busy++
	a.mu.Unlock()
}

// leave ends a call into the instance and finishes the frees that waited
// for it.
func (a *limitAllocator) leave() {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.busy--
	var run []func()
	if a.busy == 0 {
		run, a.deferred = a.deferred, nil
	}
	a.mu.Unlock()
	for _, f := range run {
		f()
	}
}

// freeWhenIdle runs f now when no call is in progress, or at the last
// leave. It reports whether it ran f now.
func (a *limitAllocator) freeWhenIdle(f func()) bool {
	a.mu.Lock()
	if a.busy > 0 {
		a.deferred = append(a.deferred, f)
		a.mu.Unlock()
		return false
	}
	a.mu.Unlock()
	f()
	return true
}

// refuse records a grow to size that is not allowed.
func (a *limitAllocator) refuse(size uint64) {
	a.refused = true
	a.largestRefused = max(a.largestRefused, size)
}

// checkLimit records a grow to size past the limit and says whether the
// memory must answer it with a refusal. It must not for the first call
// (first), which allocates the module's initial memory: wazero cannot take
// a refusal there (it would panic on the host). Run checks exported
// memories before instantiating; a memory the module does not export gets
// its initial size and Run ends the instance, OOMKilled, before the guest
// runs. over says whether size is past the limit at all.
func (a *limitAllocator) checkLimit(size uint64, first bool) (over, refuse bool) {
	if a.limit == 0 || size <= a.limit {
		return false, false
	}
	a.refuse(size)
	return true, !first
}

// heapMemory is one linear memory in a Go slice that grows up to
// alloc.limit: what non-Linux systems use, and the fallback when the host
// refuses an address range. Growing past its capacity copies, and the Go
// heap keeps freed memory for a while; memory_linux.go avoids both.
type heapMemory struct {
	alloc *limitAllocator
	buf   []byte
	// started is set by the first Reallocate, which allocates the
	// module's initial memory.
	started bool
	freed   bool
}

// Reallocate implements experimental.LinearMemory. Returning nil makes
// memory.grow return -1 to the guest.
func (m *heapMemory) Reallocate(size uint64) []byte {
	a := m.alloc
	first := !m.started
	m.started = true
	if _, refuse := a.checkLimit(size, first); refuse {
		return nil
	}
	a.meter.add(int64(size) - int64(len(m.buf)))
	if size <= uint64(cap(m.buf)) {
		// Wasm memory never shrinks, so bytes past the old length were
		// never visible to the guest and are still zero.
		m.buf = m.buf[:size]
		return m.buf
	}
	// Double the reservation to keep repeated small grows cheap, but never
	// reserve host memory beyond what the limit lets the guest use.
	newCap := size
	if a.limit > 0 {
		newCap = max(size, min(2*uint64(cap(m.buf)), a.limit))
	}
	buf := make([]byte, size, newCap)
	copy(buf, m.buf)
	m.buf = buf
	return buf
}

// Free implements experimental.LinearMemory.
func (m *heapMemory) Free() {
	if !m.freed {
		m.freed = true
		m.alloc.meter.add(-int64(len(m.buf)))
	}
	m.buf = nil
}

var (
	_ experimental.MemoryAllocator = (*limitAllocator)(nil)
	_ experimental.LinearMemory    = (*heapMemory)(nil)
)
