//go:build !linux

package wasm

import "github.com/tetratelabs/wazero/experimental"

// Allocate implements experimental.MemoryAllocator. Outside Linux memories
// are Go slices (heapMemory); memory_linux.go maps them instead.
func (a *limitAllocator) Allocate(_, _ uint64) experimental.LinearMemory {
	// The capacity hint is the module's initial size and the maximum is the
	// module's own (or 4 GiB): neither is worth reserving up front; growth
	// reserves amortised and never past the limit.
	return &heapMemory{alloc: a}
}
