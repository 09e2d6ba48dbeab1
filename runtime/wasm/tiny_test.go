package wasm

import "slices"

// A minimal Wasm assembler for hand-made test modules: one function of type
// () -> () with the given body, exported as _start.

const (
	opUnreachable = 0x00
	opLoop        = 0x03
	opIf          = 0x04
	opEnd         = 0x0b
	opBr          = 0x0c
	opCall        = 0x10
	opDrop        = 0x1a
	opI32Load     = 0x28
	opMemoryGrow  = 0x40
	opI32Const    = 0x41
	opI32Ne       = 0x47
	blockEmpty    = 0x40
)

type tinySpec struct {
	body       []byte // instructions, without the final end
	memPages   uint32 // initial pages of a memory; 0 = no memory
	hideMemory bool   // don't export the memory
	exportName string // default "_start"
	importEnv  bool   // import env.missing () -> (), which nothing provides
}

func tiny(s tinySpec) []byte {
	if s.exportName == "" {
		s.exportName = "_start"
	}
	out := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}
	out = append(out, section(1, []byte{1, 0x60, 0, 0})...) // one type: () -> ()
	fn := byte(0)
	if s.importEnv {
		out = append(out, section(2, concat([]byte{1}, name("env"), name("missing"), []byte{0x00, 0}))...)
		fn = 1
	}
	out = append(out, section(3, []byte{1, 0})...) // one function of type 0
	exports := [][]byte{concat(name(s.exportName), []byte{0x00, fn})}
	if s.memPages > 0 {
		out = append(out, section(5, concat([]byte{1, 0x00}, uleb(s.memPages)))...)
		if !s.hideMemory {
			exports = append(exports, concat(name("memory"), []byte{0x02, 0}))
		}
	}
	out = append(out, section(7, concat(uleb(uint32(len(exports))), concat(exports...)))...)
	body := concat([]byte{0}, s.body, []byte{opEnd}) // no locals
	out = append(out, section(10, concat([]byte{1}, uleb(uint32(len(body))), body))...)
	return out
}

func section(id byte, content []byte) []byte {
	return concat([]byte{id}, uleb(uint32(len(content))), content)
}

func name(s string) []byte { return concat(uleb(uint32(len(s))), []byte(s)) }

func concat(parts ...[]byte) []byte { return slices.Concat(parts...) }

func uleb(v uint32) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			out = append(out, b|0x80)
			continue
		}
		return append(out, b)
	}
}

func i32Const(v int32) []byte {
	out := []byte{opI32Const}
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && b&0x40 == 0) || (v == -1 && b&0x40 != 0) {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}
