package wasm

import "github.com/tetratelabs/wazero/experimental"

// limitAllocator backs the linear memories of one Run and enforces its
// memory limit (see RunSpec.MemoryLimitBytes for why it is done here).
//
// wazero calls it only from the goroutine executing the guest (memories are
// not shared: the threads feature, and with it shared memory, is not enabled),
// and Run reads it after the guest has stopped, so it needs no locking.
type limitAllocator struct {
	limit uint64 // bytes, a whole number of pages

	// refused records that a grow past the limit was refused: the evidence
	// for ReasonOOMKilled.
	refused bool
	// largestRefused is the largest size in bytes a refused grow asked for.
	largestRefused uint64
}

// Allocate implements experimental.MemoryAllocator.
func (a *limitAllocator) Allocate(_, _ uint64) experimental.LinearMemory {
	// The capacity hint is the module's initial size and the maximum is the
	// module's own (or 4 GiB): neither is worth reserving up front; growth
	// below reserves amortised and never past the limit.
	return &limitedMemory{alloc: a}
}

// limitedMemory is one linear memory that grows up to alloc.limit.
type limitedMemory struct {
	alloc *limitAllocator
	buf   []byte
	// started is set by the first Reallocate, which allocates the
	// module's initial memory.
	started bool
}

// Reallocate implements experimental.LinearMemory. Returning nil makes
// memory.grow return -1 to the guest.
func (m *limitedMemory) Reallocate(size uint64) []byte {
	a := m.alloc
	first := !m.started
	m.started = true
	if size > a.limit {
		a.refused = true
		a.largestRefused = max(a.largestRefused, size)
		if !first {
			return nil
		}
		// The first call allocates the module's initial memory and wazero
		// cannot take a refusal there (it would panic on the host). Run
		// checks exported memories before instantiating; a memory the
		// module does not export gets its initial size here and Run ends
		// the instance, OOMKilled, before the guest runs.
	}
	if size <= uint64(cap(m.buf)) {
		// Wasm memory never shrinks, so bytes past the old length were
		// never visible to the guest and are still zero.
		m.buf = m.buf[:size]
		return m.buf
	}
	// Double the reservation to keep repeated small grows cheap, but never
	// reserve host memory beyond what the limit lets the guest use.
	newCap := max(size, min(2*uint64(cap(m.buf)), a.limit))
	buf := make([]byte, size, newCap)
	copy(buf, m.buf)
	m.buf = buf
	return buf
}

// Free implements experimental.LinearMemory.
func (m *limitedMemory) Free() { m.buf = nil }
