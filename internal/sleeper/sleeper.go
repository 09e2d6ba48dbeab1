// Package sleeper holds the smallest Wasm command that keeps running, the
// idle pod of tests and benchmarks.
package sleeper

// Module is the smallest WASI command that keeps running: its
// _start calls poll_oneoff with one monotonic-clock subscription of an hour,
// forever. It stands for an idle pod, so the benchmark measures what the
// engine adds per pod rather than a guest language's runtime (a Go wasip1
// guest alone holds ~3.7 MiB).
//
// Hand-assembled (181 bytes) so that the benchmark needs no Wasm toolchain; the
// text form is:
//
//	(module
//	  (import "wasi_snapshot_preview1" "poll_oneoff" (func (param i32 i32 i32 i32) (result i32)))
//	  (memory (export "memory") 1)
//	  (data (i32.const 0) "<48-byte clock subscription: id 1, timeout 3600 s>")
//	  (func (export "_start")
//	    (loop (drop (call 0 (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128))) (br 0))))
func Module() []byte {
	var b []byte
	b = append(b, 0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00) // magic, version 1
	// type section: (i32 i32 i32 i32) -> i32, () -> ()
	b = append(b, 0x01, 0x0c, 0x02, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x01, 0x7f, 0x60, 0x00, 0x00)
	// import section: wasi_snapshot_preview1.poll_oneoff, type 0
	imp := []byte{0x01, 22}
	imp = append(imp, "wasi_snapshot_preview1"...)
	imp = append(imp, 11)
	imp = append(imp, "poll_oneoff"...)
	imp = append(imp, 0x00, 0x00)
	b = append(b, 0x02, byte(len(imp)))
	b = append(b, imp...)
	b = append(b, 0x03, 0x02, 0x01, 0x01)       // function section: one function of type 1
	b = append(b, 0x05, 0x03, 0x01, 0x00, 0x01) // memory section: min 1 page
	exp := []byte{0x02, 6}
	exp = append(exp, "memory"...)
	exp = append(exp, 0x02, 0x00, 6)
	exp = append(exp, "_start"...)
	exp = append(exp, 0x00, 0x01)
	b = append(b, 0x07, byte(len(exp)))
	b = append(b, exp...)
	body := []byte{0x00, // no locals
		0x03, 0x40, // loop
		0x41, 0x00, 0x41, 0xc0, 0x00, 0x41, 0x01, 0x41, 0x80, 0x01, // i32.const 0, 64, 1, 128
		0x10, 0x00, // call poll_oneoff
		0x1a,       // drop
		0x0c, 0x00, // br 0
		0x0b, 0x0b} // end loop, end func
	b = append(b, 0x0a, byte(len(body)+2), 0x01, byte(len(body)))
	b = append(b, body...)
	// data section: the subscription at address 0 (userdata 0, tag clock,
	// clock id 1 = monotonic, timeout 3600 s in ns, precision 0, flags 0)
	sub := make([]byte, 48)
	sub[16] = 1
	timeout := uint64(3600e9)
	for i := range 8 {
		sub[24+i] = byte(timeout >> (8 * i))
	}
	data := []byte{0x01, 0x00, 0x41, 0x00, 0x0b, byte(len(sub))}
	data = append(data, sub...)
	b = append(b, 0x0b, byte(len(data)))
	b = append(b, data...)
	return b
}
