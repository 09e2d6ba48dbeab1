//go:build linux

package wasm

import (
	"sync"
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// Allocate implements experimental.MemoryAllocator: an address range of the
// memory's maximum, reserved but not committed (mappedMemory). When the host
// refuses the range (address space exhausted), the memory lives on the Go
// heap instead: slower to grow, but the guest still runs.
func (a *limitAllocator) Allocate(_, maxBytes uint64) experimental.LinearMemory {
	// maxBytes is the module's declared maximum, or 4 GiB without one:
	// reserving that costs address space only, never memory.
	reserve := maxBytes
	if a.limit > 0 && a.limit < reserve {
		reserve = a.limit
	}
	if m := newMappedMemory(a, reserve); m != nil {
		return m
	}
	return &heapMemory{alloc: a}
}

// mappedMemory is one linear memory in an anonymous mapping of its maximum
// size: PROT_NONE (address space, no memory, no commit charge) beyond the
// bytes the guest has grown to, which are made readable and writable as it
// grows. The address never changes, so a grow never copies, and the host
// never holds more than the guest's own memory; Free unmaps the range, so
// the memory is back with the operating system as soon as the instance
// ends, where the Go heap would keep it until the scavenger returns it.
type mappedMemory struct {
	alloc *limitAllocator

	mu sync.Mutex
	// region is the whole reservation as syscall.Mmap returned it (Munmap
	// needs that very slice).
	region    []byte
	committed uint64 // bytes readable and writable, from the start
	started   bool   // the first Reallocate (the initial memory) happened
	freed     bool
}

// osPageSize is the host's page size; Wasm pages (64 KiB) are a multiple of
// every page size Linux uses for anonymous memory on the architectures
// wazero compiles for.
var osPageSize = uint64(syscall.Getpagesize())

func newMappedMemory(a *limitAllocator, reserve uint64) *mappedMemory {
	if reserve == 0 || reserve%osPageSize != 0 {
		return nil // a memory of no pages needs no range
	}
	region, err := mmapReserve(reserve)
	if err != nil {
		return nil
	}
	return &mappedMemory{alloc: a, region: region}
}

// mmapReserve reserves n bytes of address space. MAP_NORESERVE: nothing is
// charged until pages are made writable.
func mmapReserve(n uint64) ([]byte, error) {
	return syscall.Mmap(-1, 0, int(n), syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
}

// Reallocate implements experimental.LinearMemory. Returning nil makes
// memory.grow return -1 to the guest.
func (m *mappedMemory) Reallocate(size uint64) []byte {
	a := m.alloc
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.freed {
		return nil
	}
	first := !m.started
	m.started = true
	if over, refuse := a.checkLimit(size, first); refuse {
		return nil
	} else if over {
		// The initial memory is over the limit (see checkLimit): the range
		// is made large enough, and Run ends the instance before the
		// guest runs.
		if size > uint64(len(m.region)) {
			region, err := mmapReserve(size)
			if err != nil {
				// wazero panics on a nil initial memory; a Go slice it is.
				return make([]byte, size)
			}
			_ = syscall.Munmap(m.region)
			m.region = region
		}
	}
	if size > uint64(len(m.region)) {
		// Past the reservation: wazero checks the module's maximum first,
		// so only a limit-less memory over 4 GiB gets here, which Wasm's
		// 32-bit addresses cannot grow to.
		a.refuse(size)
		return nil
	}
	if size > m.committed {
		if err := syscall.Mprotect(m.region[m.committed:size], syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
			// The host is out of memory (or over its commit limit): a
			// refusal the guest sees as any failed grow, and the pod as
			// OOMKilled.
			a.refuse(size)
			a.hostRefused = true
			if first {
				return make([]byte, size)
			}
			return nil
		}
		a.meter.add(int64(size - m.committed))
		m.committed = size
	}
	// The length is the guest's memory size and so is the capacity: bytes
	// past it are not accessible, and nothing may append into them.
	return m.region[:size:size]
}

// Free implements experimental.LinearMemory: the range is unmapped, giving
// its memory back to the operating system.
//
// wazero frees a memory when its instance closes. That happens on the
// goroutine running the guest, after the guest stopped, except when
// wazero's Runtime.Close closes instances that are still running (a Run
// that outlived Runtime.Close's wait): unmapping under a running guest would
// fault the whole process. So while a call into the instance is in
// progress (limitAllocator.enter), Free only drops the pages (MADV_DONTNEED:
// the memory goes back to the system, a racing access reads zeros instead of
// faulting) and the unmapping waits for the call to end.
func (m *mappedMemory) Free() {
	m.mu.Lock()
	if m.freed {
		m.mu.Unlock()
		return
	}
	m.freed = true
	committed := m.committed
	m.mu.Unlock()
	m.alloc.meter.add(-int64(committed))
	unmap := func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.region != nil {
			_ = syscall.Munmap(m.region)
			m.region = nil
		}
	}
	if !m.alloc.freeWhenIdle(unmap) && committed > 0 {
		// Under the lock, so that it cannot follow the unmapping: the range
		// might by then belong to another mapping.
		m.mu.Lock()
		if m.region != nil {
			_ = syscall.Madvise(m.region[:committed], syscall.MADV_DONTNEED)
		}
		m.mu.Unlock()
	}
}

var _ experimental.LinearMemory = (*mappedMemory)(nil)
