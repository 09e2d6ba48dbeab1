package wasmbuild

import (
	"bytes"
	"testing"
	"unsafe"
)

// TestBuildCached: a command starts with the Wasm magic, and a second Build
// of the same package returns the cached bytes without building again.
func TestBuildCached(t *testing.T) {
	a := Build(t, "../../examples/crasher", false)
	if !bytes.HasPrefix(a, []byte("\x00asm")) {
		t.Fatalf("not a Wasm module: % x", a[:min(8, len(a))])
	}
	b := Build(t, "../../examples/crasher", false)
	if unsafe.SliceData(a) != unsafe.SliceData(b) {
		t.Error("second Build built again")
	}
}
