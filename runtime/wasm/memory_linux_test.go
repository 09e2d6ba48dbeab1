//go:build linux

package wasm

import (
	"testing"
	"unsafe"

	"github.com/skiffhq/skiff/internal/testutil"
)

// vmRSS is the process's resident memory in bytes (/proc/self/status).
func vmRSS(t *testing.T) int64 {
	t.Helper()
	n, err := testutil.ResidentBytes()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMappedMemoryGrowsInPlace: the memory is reserved once at the limit,
// never moves or copies as it grows, is metered, and its pages go back to
// the system when it is freed.
func TestMappedMemoryGrowsInPlace(t *testing.T) {
	const limit = 64 << 20
	var meter Meter
	a := &limitAllocator{limit: limit, meter: &meter}
	lm := a.Allocate(pageSize, 65536*pageSize)
	mm, ok := lm.(*mappedMemory)
	if !ok {
		t.Fatalf("Allocate gave a %T, want a mapped memory", lm)
	}
	if len(mm.region) != limit {
		t.Fatalf("reserved %d bytes, want the limit %d", len(mm.region), limit)
	}
	before := vmRSS(t)
	buf := lm.Reallocate(pageSize)
	base := unsafe.SliceData(buf)
	buf[0] = 42
	for size := uint64(2 * pageSize); size <= limit; size += 16 * pageSize {
		buf = lm.Reallocate(size)
		if uint64(len(buf)) != size || uint64(cap(buf)) != size {
			t.Fatalf("size %d: len %d cap %d", size, len(buf), cap(buf))
		}
		if unsafe.SliceData(buf) != base {
			t.Fatalf("size %d: the memory moved", size)
		}
		if buf[0] != 42 || buf[size-1] != 0 {
			t.Fatalf("size %d: content not preserved or not zero", size)
		}
	}
	buf = lm.Reallocate(limit)
	if got := meter.Bytes(); got != limit {
		t.Errorf("meter = %d, want %d", got, limit)
	}
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1 // commit every page
	}
	touched := vmRSS(t)
	if a.refused {
		t.Fatal("refused within the limit")
	}
	if got := lm.Reallocate(limit + pageSize); got != nil || !a.refused || a.largestRefused != limit+pageSize {
		t.Fatalf("over the limit: len %d, refused %v, largest %d", len(got), a.refused, a.largestRefused)
	}
	lm.Free()
	after := vmRSS(t)
	t.Logf("RSS: before %d MiB, touched %d MiB, after Free %d MiB", before>>20, touched>>20, after>>20)
	if touched-before < limit/2 {
		t.Errorf("touching %d MiB raised RSS by only %d MiB: the test measures nothing", limit>>20, (touched-before)>>20)
	}
	if after > before+limit/4 {
		t.Errorf("RSS after Free %d MiB, before %d MiB: the memory was not returned", after>>20, before>>20)
	}
	if mm.region != nil || meter.Bytes() != 0 {
		t.Errorf("after Free: region %v, meter %d", mm.region != nil, meter.Bytes())
	}
}

// TestMappedMemoryFreeWhileBusy: a Free during a call into the instance
// (wazero's Runtime.Close from another goroutine) drops the pages but keeps
// the range mapped until the call ends, so a guest still running cannot
// fault the process.
func TestMappedMemoryFreeWhileBusy(t *testing.T) {
	a := &limitAllocator{limit: 4 * pageSize}
	lm := a.Allocate(pageSize, 4*pageSize)
	mm := lm.(*mappedMemory)
	a.enter()
	buf := lm.Reallocate(2 * pageSize)
	buf[pageSize] = 7
	lm.Free()
	if mm.region == nil {
		t.Fatal("unmapped during a call")
	}
	if buf[pageSize] != 0 {
		t.Errorf("a freed page still holds %d, want the pages dropped", buf[pageSize])
	}
	buf[0] = 1 // still writable: no fault
	if got := lm.Reallocate(3 * pageSize); got != nil {
		t.Error("a freed memory grew")
	}
	a.leave()
	if mm.region != nil {
		t.Fatal("not unmapped after the call ended")
	}
}

// TestMappedMemoryInitialOverLimit: the first allocation cannot be refused
// (wazero would panic), so it gets the range it needs and the refusal is
// recorded for Run to end the instance.
func TestMappedMemoryInitialOverLimit(t *testing.T) {
	a := &limitAllocator{limit: 2 * pageSize}
	lm := a.Allocate(3*pageSize, 65536*pageSize)
	buf := lm.Reallocate(3 * pageSize)
	if len(buf) != 3*pageSize || !a.refused {
		t.Fatalf("len %d, refused %v", len(buf), a.refused)
	}
	buf[len(buf)-1] = 1
	lm.Free()
}
