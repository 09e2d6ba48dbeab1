//go:build linux

package wasm

// A hostile guest under the fuzzer: a module, assembled here at test time,
// that imports every host function the Runtime offers and calls them one
// after another with arguments the fuzz input chooses, biased towards the
// values that break host code (bad descriptors, pointers at and past the end
// of memory, huge lengths, paths that climb out of mounts). The engine must
// come out of every run as it went in: no panic in host code, the run ended
// by its deadline, no goroutine, descriptor or host memory kept, nothing
// written outside the mounts, and the Runtime still runs a good guest.
//
// The guest is one fixed module (compiled once per process) that interprets a
// program: the fuzz input is decoded in Go (decodeHostile) into records of
// (function, arguments), which reach the guest through its stdin (a command)
// or its request body (an SDK handler module). Keeping the module fixed keeps
// the compile cache and the fuzz loop small; deciding arguments in Go keeps
// the bias readable.

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/metrics"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	skiffrt "github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/runtime/memapp"
	"github.com/skiffhq/skiff/sdk/abi"
)

// hostileHostModules are the host modules whose functions the hostile guest
// imports. TestHostileGuestCoversHostModules fails when runtime/wasm
// registers a host module that is not listed here, so a new set of host
// functions cannot escape the fuzzer.
var hostileHostModules = map[string]string{
	// expression passed to NewHostModuleBuilder in the runtime's source: module name
	"wasi_snapshot_preview1.ModuleName": wasi_snapshot_preview1.ModuleName,
	"abi.HostModule":                    abi.HostModule,
}

// The guest's memory layout. The program area and the blob are filled from
// the fuzz input; the toolkit holds well-formed structures (paths, iovecs,
// poll subscriptions, handler responses) that arguments can point at, so the
// fuzzer gets past the first argument check of each host function.
const (
	hostileScratch   = 0x0000 // _start's iovec and nread
	hostileToolkit   = 0x0100 // data segment, up to hostileProg
	hostileProg      = 0x1000 // program header: nrec u32, alloc result u32, handle result u64
	hostileRecords   = hostileProg + 16
	hostileMaxParams = 9 // path_open
	hostileRecSize   = 8 + 8*hostileMaxParams
	hostileMaxRecs   = 64 // bounds the calls of one run
	hostileBlob      = 0x3000
	hostileBlobMax   = 0x1000                                     // the raw fuzz input's first bytes, a target for pointers
	hostileInLen     = hostileBlob + hostileBlobMax - hostileProg // bytes of program a run reads
	hostileReqBuf    = 0x8000                                     // where skiff_http_alloc puts requests by default

	// hostileMemLimit is the runs' memory limit: 4 pages, so memory.grow
	// and pointers around the limit are in reach.
	hostileMemLimit = 4 * pageSize
	// hostileRunTimeout bounds each run (and each handler request): a
	// host call that ignores cancellation shows up as a run that outlives
	// it by far (hostileHang).
	hostileRunTimeout = time.Second
	hostileHang       = 10 * time.Second
	// hostileMaxAlloc is the most host heap one run may allocate. The
	// guest's own memory is at most hostileMemLimit (twice while it grows);
	// the rest is the host's bookkeeping, which must not scale with values
	// the guest chooses.
	hostileMaxAlloc = 32 << 20
)

// hostImport is one host function the guest imports.
type hostImport struct {
	module, name string
	params       []api.ValueType
	paramNames   []string
	results      []api.ValueType
}

// hostImports lists every function of hostileHostModules as r serves them,
// sorted, so the program's function numbers are stable for one wazero
// version.
func hostImports(tb testing.TB, r *Runtime) []hostImport {
	tb.Helper()
	var out []hostImport
	for _, mod := range hostileHostModules {
		m := r.wr.Module(mod)
		if m == nil {
			tb.Fatalf("host module %s is not instantiated in the Runtime", mod)
		}
		for name, def := range m.ExportedFunctionDefinitions() {
			out = append(out, hostImport{module: mod, name: name, params: def.ParamTypes(),
				paramNames: def.ParamNames(), results: def.ResultTypes()})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].module != out[j].module {
			return out[i].module < out[j].module
		}
		return out[i].name < out[j].name
	})
	for i, imp := range out {
		if len(imp.params) > hostileMaxParams {
			tb.Fatalf("%s.%s has %d parameters; raise hostileMaxParams", imp.module, imp.name, len(imp.params))
		}
		if len(imp.paramNames) != len(imp.params) {
			// The bias is chosen by parameter name: without names every
			// argument is drawn from the pointers.
			out[i].paramNames = make([]string, len(imp.params))
		}
	}
	return out
}

// span is a guest address and a length.
type span struct{ ptr, len uint32 }

func (s span) packed() uint64 { return uint64(s.ptr)<<32 | uint64(s.len) }

// toolkit is the guest's data segment: structures host functions accept.
type toolkit struct {
	data      []byte // at hostileToolkit
	paths     []span
	iovs      []span // an iovec array and its count
	hello     span   // iovec array writing "hello\n"
	buf       uint32 // 128 bytes of scratch the iovecs point at
	result    uint32 // scratch for results
	subs      uint32 // 8 poll subscriptions
	events    uint32 // room for 8 events
	responses []span // handler responses, well- and ill-formed
}

// add appends b aligned to 8 bytes and returns its guest address.
func (tk *toolkit) add(b []byte) uint32 {
	for len(tk.data)%8 != 0 {
		tk.data = append(tk.data, 0)
	}
	addr := hostileToolkit + uint32(len(tk.data))
	tk.data = append(tk.data, b...)
	return addr
}

func (tk *toolkit) addSpan(b []byte) span { return span{tk.add(b), uint32(len(b))} }

func buildToolkit(tb testing.TB) toolkit {
	tb.Helper()
	var tk toolkit
	le := binary.LittleEndian
	tk.buf = tk.add(make([]byte, 128))
	tk.result = tk.add(make([]byte, 64))

	// Paths, relative to /data (fd 3) or /ro (fd 4): ones that exist or
	// can be made, and ones that try to leave the mount.
	for _, p := range []string{"f", "d", "d/f", ".", "ro.txt", "l", "", "d/..", "./", "..", "../sentinel", "d/../../sentinel",
		"../../../../etc/passwd", "/etc/passwd", "/data/f", "f\x00x", "l/f", strings.Repeat("a", 300)} {
		tk.paths = append(tk.paths, tk.addSpan([]byte(p)))
	}

	iovec := func(parts ...span) span {
		var b []byte
		for _, p := range parts {
			b = le.AppendUint32(b, p.ptr)
			b = le.AppendUint32(b, p.len)
		}
		return span{tk.add(b), uint32(len(parts))}
	}
	hello := tk.addSpan([]byte("hello\n"))
	tk.hello = iovec(hello)
	tk.iovs = []span{
		iovec(span{tk.buf, 64}),
		iovec(span{tk.buf, 64}, span{tk.buf + 64, 64}),
		iovec(span{tk.buf, 0}),
		tk.hello,
		iovec(span{0xfffffff0, 64}),           // past any memory
		iovec(span{0, 0xffffffff}),            // longer than any memory
		iovec(span{pageSize - 16, 64}),        // across the end of the initial memory
		iovec(span{hostileMemLimit - 16, 16}), // the last bytes the limit allows
	}

	// Poll subscriptions (48 bytes each): clocks, sockets, files, stdio
	// and a bad type; arguments point at any of them with any count.
	sub := func(userdata uint64, typ byte, fd uint32, timeout uint64, flags uint16) []byte {
		b := make([]byte, 48)
		le.PutUint64(b[0:], userdata)
		b[8] = typ
		if typ == 0 {
			le.PutUint32(b[16:], 1) // monotonic clock
			le.PutUint64(b[24:], timeout)
			le.PutUint16(b[40:], flags)
		} else {
			le.PutUint32(b[16:], fd)
		}
		return b
	}
	tk.subs = tk.add(slices.Concat(
		sub(1, 0, 0, uint64(time.Millisecond), 0),
		sub(2, 1, fl, 0, 0),
		sub(3, 2, sk, 0, 0),
		sub(4, 1, 0, 0, 0),
		sub(5, 1, 3, 0, 0),
		sub(6, 2, 1, 0, 0),
		sub(7, 0, 0, 0, 1), // absolute time
		sub(8, 7, 0, 0, 0), // no such type
	))
	tk.events = tk.add(make([]byte, 8*32))

	// Handler responses (package sdk/abi's encoding).
	resp := func(status uint32, hdr [][2]string, body string) []byte {
		b := le.AppendUint32(nil, status)
		b = le.AppendUint32(b, uint32(len(hdr)))
		for _, kv := range hdr {
			for _, s := range kv {
				b = le.AppendUint32(b, uint32(len(s)))
				b = append(b, s...)
			}
		}
		b = le.AppendUint32(b, uint32(len(body)))
		return append(b, body...)
	}
	for _, r := range [][]byte{
		resp(200, [][2]string{{"X-Guest", "1"}}, "ok"),
		resp(99, nil, ""),
		resp(1000, nil, ""),
		resp(math.MaxUint32, nil, ""),
		le.AppendUint32(le.AppendUint32(nil, 200), math.MaxUint32), // a header count that lies
		// Header names Go's http.Header would not produce: non-canonical
		// framing headers and names and values with line breaks.
		resp(200, [][2]string{{"content-length", "999"}}, "ok"),
		resp(200, [][2]string{{"transfer-encoding", "chunked"}}, "ok"),
		resp(200, [][2]string{{"X-A\r\nInjected", "1"}, {"X-B", "v\r\nInjected: 2"}}, "ok"),
		resp(204, [][2]string{{"Content-Length", "5"}}, "hello"),
		resp(200, [][2]string{{"", "empty name"}, {"X-C", string(make([]byte, 300))}}, ""),
		{0xc8, 0},
	} {
		tk.responses = append(tk.responses, tk.addSpan(r))
	}
	if hostileToolkit+len(tk.data) > hostileProg {
		tb.Fatalf("toolkit is %d bytes, more than fits below the program", len(tk.data))
	}
	return tk
}

// Wasm opcodes beyond tiny_test.go's.
const (
	opBlock     = 0x02
	opBrIf      = 0x0d
	opBrTable   = 0x0e
	opSelect    = 0x1b
	opLocalGet  = 0x20
	opLocalSet  = 0x21
	opLocalTee  = 0x22
	opI64Load   = 0x29
	opI32Store  = 0x36
	opI32Eqz    = 0x45
	opI32LtU    = 0x49
	opI32GeU    = 0x4f
	opI32Add    = 0x6a
	opI32Sub    = 0x6b
	opI32Mul    = 0x6c
	opI32WrapI6 = 0xa7
	opPrefixFC  = 0xfc
	valI32      = 0x7f
	valI64      = 0x7e
)

func memarg(align, offset uint32) []byte { return concat(uleb(align), uleb(offset)) }

// hostileModule assembles the hostile guest: a command (`_start` reads the
// program from stdin) or an SDK handler module (each request's body carries
// the program; skiff_http_alloc and skiff_http_handle answer what the
// program's header says).
func hostileModule(imps []hostImport, tk toolkit, handler bool) []byte {
	n := uint32(len(imps))
	var types [][]byte
	fnType := func(params, results []api.ValueType) []byte {
		return concat([]byte{0x60}, uleb(uint32(len(params))), params, uleb(uint32(len(results))), results)
	}
	var imports [][]byte
	for i, imp := range imps {
		types = append(types, fnType(imp.params, imp.results))
		imports = append(imports, concat(name(imp.module), name(imp.name), []byte{0x00}, uleb(uint32(i))))
	}
	tVoid, tAlloc, tHandle, tVersion := n, n+1, n+2, n+3
	types = append(types,
		fnType(nil, nil),
		fnType([]api.ValueType{valI32}, []api.ValueType{valI32}),
		fnType([]api.ValueType{valI32, valI32}, []api.ValueType{valI64}),
		fnType(nil, []api.ValueType{valI32}))

	fdRead := -1
	for i, imp := range imps {
		if imp.module == wasi_snapshot_preview1.ModuleName && imp.name == "fd_read" {
			fdRead = i
		}
	}

	// interp runs the records at hostileRecords: each calls import op
	// (or memory.grow for op == n) with its arguments, results dropped.
	// Locals: 0 p, 1 end, 2 count.
	interp := concat(
		i32Const(hostileProg), []byte{opI32Load}, memarg(2, 0), []byte{opLocalSet, 2},
		[]byte{opLocalGet, 2}, i32Const(hostileMaxRecs), []byte{opLocalGet, 2}, i32Const(hostileMaxRecs),
		[]byte{opI32LtU, opSelect},
		i32Const(hostileRecSize), []byte{opI32Mul}, i32Const(hostileRecords), []byte{opI32Add, opLocalSet, 1},
		i32Const(hostileRecords), []byte{opLocalSet, 0},
		[]byte{opBlock, blockEmpty, opLoop, blockEmpty},
		[]byte{opLocalGet, 0, opLocalGet, 1, opI32GeU, opBrIf, 1},
		[]byte{opBlock, blockEmpty}, // $next
	)
	k := n + 1 // cases: the imports, then memory.grow
	for range k {
		interp = append(interp, opBlock, blockEmpty)
	}
	interp = append(interp, opLocalGet, 0, opI32Load)
	interp = append(interp, memarg(2, 0)...)
	interp = append(interp, opBrTable)
	interp = append(interp, uleb(k)...)
	for i := range k {
		interp = append(interp, uleb(i)...)
	}
	interp = append(interp, uleb(k)...) // out of range: skip the record
	for i, imp := range imps {
		interp = append(interp, opEnd)
		for j, pt := range imp.params {
			interp = append(interp, opLocalGet, 0, opI64Load)
			interp = append(interp, memarg(3, uint32(8+8*j))...)
			if pt == api.ValueTypeI32 {
				interp = append(interp, opI32WrapI6)
			}
		}
		interp = append(interp, opCall)
		interp = append(interp, uleb(uint32(i))...)
		for range imp.results {
			interp = append(interp, opDrop)
		}
		interp = append(interp, opBr)
		interp = append(interp, uleb(k-1-uint32(i))...)
	}
	interp = append(interp, opEnd) // the memory.grow case
	interp = append(interp, opLocalGet, 0, opI64Load)
	interp = append(interp, memarg(3, 8)...)
	interp = append(interp, opI32WrapI6, opMemoryGrow, 0, opDrop)
	interp = concat(interp,
		[]byte{opEnd}, // $next
		[]byte{opLocalGet, 0}, i32Const(hostileRecSize), []byte{opI32Add, opLocalSet, 0, opBr, 0},
		[]byte{opEnd, opEnd}) // loop, block

	fnInterp := n
	funcs := []uint32{tVoid}
	bodies := [][]byte{funcBody([]byte{1, 3, valI32}, interp)}
	var exports [][]byte
	exports = append(exports, concat(name("memory"), []byte{0x02, 0}))
	if !handler {
		// _start: fd_read(0, [{hostileProg, hostileInLen}], 1, &nread); interp()
		start := concat(
			i32Const(hostileScratch), i32Const(hostileProg), []byte{opI32Store}, memarg(2, 0),
			i32Const(hostileScratch), i32Const(hostileInLen), []byte{opI32Store}, memarg(2, 4),
			i32Const(0), i32Const(hostileScratch), i32Const(1), i32Const(hostileScratch+8),
			[]byte{opCall}, uleb(uint32(fdRead)), []byte{opDrop},
			[]byte{opCall}, uleb(fnInterp))
		funcs = append(funcs, tVoid)
		bodies = append(bodies, funcBody([]byte{0}, start))
		exports = append(exports, concat(name("_start"), []byte{0x00}, uleb(n+1)))
	} else {
		// skiff_http_alloc(size): the header's alloc result, or
		// hostileReqBuf while it is 0 (before the first program).
		alloc := concat(i32Const(hostileReqBuf), i32Const(hostileProg), []byte{opI32Load}, memarg(2, 4),
			[]byte{opLocalTee, 1, opLocalGet, 1, opI32Eqz, opSelect})
		// skiff_http_handle(ptr, len): the body ends with the program's
		// length (u32) after the program; copy it to hostileProg, run it,
		// return the header's handle result.
		bodyEnd := concat([]byte{opLocalGet, 0, opLocalGet, 1, opI32Add}, i32Const(4), []byte{opI32Sub})
		handle := concat(
			bodyEnd, []byte{opI32Load}, memarg(2, 0), []byte{opLocalSet, 2},
			[]byte{opLocalGet, 2}, i32Const(hostileInLen), []byte{opLocalGet, 2}, i32Const(hostileInLen),
			[]byte{opI32LtU, opSelect, opLocalSet, 2},
			i32Const(hostileProg), bodyEnd, []byte{opLocalGet, 2, opI32Sub, opLocalGet, 2},
			[]byte{opPrefixFC}, uleb(10), []byte{0, 0}, // memory.copy
			[]byte{opCall}, uleb(fnInterp),
			i32Const(hostileProg), []byte{opI64Load}, memarg(3, 8))
		version := i32Const(abi.Version)
		funcs = append(funcs, tAlloc, tHandle, tVersion)
		bodies = append(bodies,
			funcBody([]byte{1, 1, valI32}, alloc),
			funcBody([]byte{1, 1, valI32}, handle),
			funcBody([]byte{0}, version))
		exports = append(exports,
			concat(name(abi.ExportAlloc), []byte{0x00}, uleb(n+1)),
			concat(name(abi.ExportHandle), []byte{0x00}, uleb(n+2)),
			concat(name(abi.ExportVersion), []byte{0x00}, uleb(n+3)))
	}

	var funcSec []byte
	for _, t := range funcs {
		funcSec = append(funcSec, uleb(t)...)
	}
	data := concat([]byte{1, 0x00}, i32Const(hostileToolkit), []byte{opEnd}, uleb(uint32(len(tk.data))), tk.data)
	return concat(
		[]byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00},
		section(1, vec(types)),
		section(2, vec(imports)),
		section(3, concat(uleb(uint32(len(funcs))), funcSec)),
		section(5, []byte{1, 0x00, 1}), // one memory: 1 page, no maximum
		section(7, vec(exports)),
		section(10, vec(bodies)),
		section(11, data),
	)
}

func vec(items [][]byte) []byte { return concat(uleb(uint32(len(items))), concat(items...)) }

func funcBody(locals, code []byte) []byte {
	b := concat(locals, code, []byte{opEnd})
	return concat(uleb(uint32(len(b))), b)
}

// hostileProgram is a decoded fuzz input.
type hostileProgram struct {
	handler bool
	// Command runs: how many listeners, and whether a client connects
	// (and sends "hello\n") before the guest starts.
	listeners int
	dial      bool
	// Handler runs: what skiff_http_alloc and skiff_http_handle return
	// (alloc 0: a good buffer).
	allocResult  uint32
	handleResult uint64
	recs         []hostileRecord
	blob         []byte
}

type hostileRecord struct {
	op   uint32
	args [hostileMaxParams]uint64
}

// bytes is the program as the guest reads it: hostileInLen bytes from
// hostileProg on.
func (p *hostileProgram) bytes() []byte {
	b := make([]byte, hostileInLen)
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(len(p.recs)))
	le.PutUint32(b[4:], p.allocResult)
	le.PutUint64(b[8:], p.handleResult)
	for i, r := range p.recs {
		off := hostileRecords - hostileProg + i*hostileRecSize
		le.PutUint32(b[off:], r.op)
		for j, a := range r.args {
			le.PutUint64(b[off+8+8*j:], a)
		}
	}
	copy(b[hostileBlob-hostileProg:], p.blob)
	return b
}

// fuzzReader hands out the input's bytes, then zeros.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) done() bool { return len(r.b) == 0 }

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *fuzzReader) u64() uint64 {
	var b [8]byte
	for i := range b {
		b[i] = r.byte()
	}
	return binary.LittleEndian.Uint64(b[:])
}

// rawSel: a selector byte below it takes the next 8 bytes as the value
// itself; above, it picks from the parameter's list of interesting values.
const rawSel = 0x18

func pick(r *fuzzReader, values []uint64) uint64 {
	sel := r.byte()
	if sel < rawSel {
		return r.u64()
	}
	return values[int(sel-rawSel)%len(values)]
}

// Interesting argument values, by the parameter's role.
var (
	hostileFDs = []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 64, 4095, 4096,
		abi.FirstSocketFD, abi.FirstSocketFD + 1, abi.FirstSocketFD + 2, abi.FirstSocketFD + 3,
		abi.FirstSocketFD - 1, 1 << 20, math.MaxInt32, 1 << 31, math.MaxUint32}
	hostileLens = []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 24, 32, 48, 64, 255, 256, 4096,
		pageSize - 1, pageSize, hostileMemLimit - 1, hostileMemLimit, 1 << 24, math.MaxInt32, 1 << 31, math.MaxUint32}
	hostileFlags = []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 31, 32, 63, 64, 127, 255,
		math.MaxUint16, math.MaxInt32, math.MaxUint32}
	hostileI64s = []uint64{0, 1, 2, 4096, 1 << 20, uint64(time.Millisecond), uint64(time.Second), 1 << 31, 1 << 32,
		1 << 40, 1 << 62, math.MaxInt64, 1 << 63, math.MaxUint64}
)

func (tk *toolkit) pointers() []uint64 {
	ps := []uint64{0, 1, 3, 4, 16, uint64(tk.buf), uint64(tk.buf + 60), uint64(tk.result), uint64(tk.result + 4),
		uint64(tk.subs), uint64(tk.events), uint64(tk.paths[0].ptr), hostileProg, hostileBlob, hostileBlob + 1,
		hostileBlob + 256, hostileReqBuf, pageSize - 4, pageSize - 1, pageSize, 2*pageSize - 4,
		hostileMemLimit - 4, hostileMemLimit, math.MaxInt32, 1 << 31, math.MaxUint32 - 3, math.MaxUint32}
	for i := range uint64(8) {
		ps = append(ps, uint64(tk.subs)+48*i)
	}
	return ps
}

// decodeHostile turns a fuzz input into a program. The first byte chooses
// the kind of run; then each record is a function byte and one selector
// byte (or 1+8 bytes) per parameter. The whole input is also copied to the
// blob, where pointers can reach it: the fuzzer writes structures there.
func decodeHostile(data []byte, imps []hostImport, tk *toolkit) *hostileProgram {
	r := &fuzzReader{b: data}
	p := &hostileProgram{blob: data[:min(len(data), hostileBlobMax)]}
	mode := r.byte()
	p.handler = mode&1 != 0
	p.listeners = 1 + int(mode>>1&1)
	p.dial = mode&4 != 0
	ptrs := tk.pointers()
	if p.handler {
		if sel := r.byte(); sel >= 0x80 {
			p.allocResult = uint32(ptrs[int(sel)%len(ptrs)])
		}
		results := []uint64{0, 1, hostileBlob<<32 | uint64(len(p.blob)), 0xfffffff0<<32 | 64, hostileReqBuf<<32 | math.MaxUint32}
		for _, s := range tk.responses {
			results = append(results, s.packed())
		}
		p.handleResult = pick(r, results)
	}
	for !r.done() && len(p.recs) < hostileMaxRecs {
		rec := hostileRecord{op: uint32(r.byte()) % uint32(len(imps)+1)}
		if int(rec.op) == len(imps) {
			rec.args[0] = pick(r, []uint64{0, 1, 2, 3, 4, 16, 1 << 16, math.MaxUint32}) // memory.grow
		} else {
			decodeArgs(r, imps[rec.op], tk, ptrs, &rec)
		}
		p.recs = append(p.recs, rec)
	}
	return p
}

// decodeArgs chooses the arguments of one call by the parameters' names
// (wazero names WASI's parameters as the specification does).
func decodeArgs(r *fuzzReader, imp hostImport, tk *toolkit, ptrs []uint64, rec *hostileRecord) {
	names := imp.paramNames
	for j := 0; j < len(imp.params); j++ {
		n := names[j]
		next := ""
		if j+1 < len(names) {
			next = names[j+1]
		}
		switch {
		case (n == "path" || n == "old_path" || n == "new_path") && next == n+"_len":
			// A path and its length from one selector.
			sel := r.byte()
			if sel < rawSel {
				rec.args[j] = r.u64()
				continue // the length is chosen on its own
			}
			s := tk.paths[int(sel-rawSel)%len(tk.paths)]
			rec.args[j], rec.args[j+1] = uint64(s.ptr), uint64(s.len)
			j++
		case (n == "iovs" || n == "ri_data" || n == "si_data") && next == n+"_len":
			sel := r.byte()
			if sel < rawSel {
				rec.args[j] = r.u64()
				continue
			}
			if i := int(sel - rawSel); i < 2*len(tk.iovs) {
				s := tk.iovs[i%len(tk.iovs)]
				rec.args[j], rec.args[j+1] = uint64(s.ptr), uint64(s.len)
				j++
				continue
			}
			rec.args[j] = ptrs[int(sel)%len(ptrs)]
		case n == "in":
			rec.args[j] = pick(r, append([]uint64{uint64(tk.subs), uint64(tk.subs + 48)}, ptrs...))
		case n == "out":
			rec.args[j] = pick(r, append([]uint64{uint64(tk.events)}, ptrs...))
		case n == "fd" || n == "old_fd" || n == "new_fd" || n == "to":
			rec.args[j] = pick(r, hostileFDs)
		case imp.params[j] == api.ValueTypeI64:
			rec.args[j] = pick(r, hostileI64s)
		case strings.HasSuffix(n, "_len") || n == "nsubscriptions":
			rec.args[j] = pick(r, hostileLens)
		case strings.HasSuffix(n, "flags") || slices.Contains([]string{"rval", "sig", "id", "how", "whence", "advice"}, n):
			rec.args[j] = pick(r, hostileFlags)
		default: // result pointers, buffers, argv...
			rec.args[j] = pick(r, ptrs)
		}
	}
}

// hostileEnv is what every fuzz input shares: a Runtime of its own (a
// broken one must not take the other tests' down) and the two compiled
// hostile guests.
type hostileEnv struct {
	r            *Runtime
	imps         []hostImport
	tk           toolkit
	cmd, handler *Module
	runs         atomic.Int64
}

func newHostileEnv(tb testing.TB) *hostileEnv {
	tb.Helper()
	r, err := New(context.Background(), Config{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hostileHang)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			tb.Errorf("close runtime: %v", err)
		}
	})
	e := &hostileEnv{r: r, imps: hostImports(tb, r), tk: buildToolkit(tb)}
	if e.cmd, err = r.Compile(context.Background(), hostileModule(e.imps, e.tk, false)); err != nil {
		tb.Fatalf("compile the hostile command: %v", err)
	}
	if e.handler, err = r.Compile(context.Background(), hostileModule(e.imps, e.tk, true)); err != nil {
		tb.Fatalf("compile the hostile handler: %v", err)
	}
	if !e.handler.IsHandler() {
		tb.Fatal("the hostile handler module is not an SDK handler module")
	}
	return e
}

// FuzzHostileGuest runs a guest that calls every host function with
// arguments from the fuzz input (see the top of this file) and checks that
// only the guest suffers. The seed corpus is in
// testdata/fuzz/FuzzHostileGuest (TestHostileSeeds writes it); CI's bench
// task fuzzes for a bounded time.
func FuzzHostileGuest(f *testing.F) {
	e := newHostileEnv(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		e.check(t, data)
	})
}

func (e *hostileEnv) check(t *testing.T, data []byte) {
	p := decodeHostile(data, e.imps, &e.tk)
	dirs := makeHostileDirs(t)
	goroutines, fds := goruntime.NumGoroutine(), openFDs(t)
	allocs := heapAllocs()
	if p.handler {
		e.runHandler(t, p, dirs)
	} else {
		e.runCommand(t, p, dirs)
	}
	if a := heapAllocs() - allocs; a > hostileMaxAlloc {
		t.Fatalf("the host allocated %d MiB during the run (at most %d MiB allowed): host bookkeeping sized by the guest",
			a>>20, hostileMaxAlloc>>20)
	}
	settle(t, goroutines, fds)
	dirs.check(t)
	if e.runs.Add(1)%16 == 1 {
		e.sane(t)
	}
}

// loopbackOnly lets a hostile guest's sockets reach loopback addresses only.
type loopbackOnly struct{}

func (loopbackOnly) Allow(dir skiffrt.Direction, _ skiffrt.Protocol, peer netip.AddrPort, _ uint16) bool {
	return dir == skiffrt.Ingress || peer.Addr().Unmap().IsLoopback()
}

// runCommand runs p as a command, as a pod's container runs: mounts,
// listeners, a memory limit and a deadline.
func (e *hostileEnv) runCommand(t *testing.T, p *hostileProgram, dirs hostileDirs) {
	var lns []Listener
	for range p.listeners {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		lns = append(lns, Listener{TCP: ln.(*net.TCPListener)})
	}
	if p.dial {
		c, err := net.DialTimeout("tcp", lns[0].TCP.Addr().String(), hostileHang)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("hello\n")); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr cappedWriter
	spec := RunSpec{
		Args:             []string{"hostile"},
		Mounts:           dirs.mounts(),
		Stdin:            bytes.NewReader(p.bytes()),
		Stdout:           &stdout,
		Stderr:           &stderr,
		MemoryLimitBytes: hostileMemLimit,
		Listeners:        lns,
		// The guest may open sockets of its own: they stay on this
		// machine's loopback, and names resolve against a server that is
		// not there (DESIGN.md: tests send nothing off loopback).
		PodIP:    "127.0.0.1",
		Firewall: loopbackOnly{},
		DNS:      &skiffrt.DNSConfig{Nameservers: []string{"127.0.0.1:9"}},
		// Messaging and key-value in memory: the guest's messages reach
		// its own subscriptions.
		App: memapp.New().Namespace("hostile"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), hostileRunTimeout)
	defer cancel()
	st, err := bounded(t, func() (ExitStatus, error) { return e.r.Run(ctx, e.cmd, spec) })
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkStatus(t, st)
}

// runHandler serves two requests carrying p through a Handler behind a real
// HTTP server, as a pod serves an SDK handler module, and checks what a
// client gets.
func (e *hostileEnv) runHandler(t *testing.T, p *hostileProgram, dirs hostileDirs) {
	var mu sync.Mutex
	var exits []ExitStatus
	var stdout, stderr cappedWriter
	ctx, cancel := context.WithTimeout(context.Background(), hostileHang)
	defer cancel()
	h, err := e.r.NewHandler(ctx, e.handler, HandlerSpec{
		Args:             []string{"hostile"},
		Mounts:           dirs.mounts(),
		Stdout:           &stdout,
		Stderr:           &stderr,
		MemoryLimitBytes: hostileMemLimit,
		PoolSize:         1,
		QueueSize:        1,
		QueueTimeout:     hostileHang,
		RequestTimeout:   hostileRunTimeout,
		App:              memapp.New().Namespace("hostile"),
		OnInstanceExit: func(st ExitStatus) {
			mu.Lock()
			defer mu.Unlock()
			exits = append(exits, st)
		},
	})
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	srv := httptest.NewServer(h)
	client := &http.Client{
		Timeout:   hostileRunTimeout + hostileHang,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
	body := binary.LittleEndian.AppendUint32(p.bytes(), hostileInLen)
	for range 2 {
		resp, err := client.Post(srv.URL+"/hostile", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			// The host sent something an HTTP client cannot read: the
			// guest got through to the framing of the response.
			srv.Close()
			t.Fatalf("request: %v", err)
		}
		_, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if rerr != nil {
			srv.Close()
			t.Fatalf("reading the response: %v", rerr)
		}
		if resp.StatusCode < 200 || resp.StatusCode > 999 {
			t.Errorf("status %d", resp.StatusCode)
		}
		for k := range resp.Header {
			if strings.Contains(strings.ToLower(k), "injected") {
				t.Errorf("the guest injected header %q into the response", k)
			}
		}
	}
	srv.Close()
	if err := h.Close(ctx); err != nil {
		t.Fatalf("close handler: %v", err)
	}
	if st := h.Stats(); st.Instances != 0 {
		t.Fatalf("%d instances alive after Close", st.Instances)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, st := range exits {
		checkStatus(t, st)
	}
}

// bounded runs fn and fails the test if fn outlives the run's deadline by
// far: a host call that cancellation cannot reach.
func bounded(t *testing.T, fn func() (ExitStatus, error)) (ExitStatus, error) {
	type result struct {
		st  ExitStatus
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := fn()
		done <- result{st, err}
	}()
	select {
	case r := <-done:
		return r.st, r.err
	case <-time.After(hostileRunTimeout + hostileHang):
		t.Fatalf("the run is still going %v after its deadline:\n%s", hostileHang, allStacks())
		return ExitStatus{}, nil
	}
}

func allStacks() []byte {
	buf := make([]byte, 1<<20)
	return buf[:goruntime.Stack(buf, true)]
}

// checkStatus checks how a guest ended: any ending is fine except a panic
// in host code, which wazero recovers and reports as a trap.
func checkStatus(t *testing.T, st ExitStatus) {
	t.Helper()
	switch st.Reason {
	case ReasonCompleted, ReasonError, ReasonOOMKilled, ReasonKilled:
	default:
		t.Fatalf("unknown reason in %+v", st)
	}
	if strings.Contains(st.Message, "recovered by wazero") {
		t.Fatalf("a host function panicked: %s", st.Message)
	}
}

// settle waits a bounded time for the goroutines and descriptors of a run
// to go, and fails if more remain than before it.
func settle(t *testing.T, goroutines, fds int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		g, f := goruntime.NumGoroutine(), openFDs(t)
		if g <= goroutines && f <= fds {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("leak: goroutines %d -> %d, open descriptors %d -> %d\n%s", goroutines, g, fds, f, allStacks())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// sane runs a well-behaved program on the same Runtime: the hostile runs
// before it left the Runtime working.
func (e *hostileEnv) sane(t *testing.T) {
	t.Helper()
	p := &hostileProgram{recs: []hostileRecord{{op: e.op(t, "fd_write"),
		args: [hostileMaxParams]uint64{1, uint64(e.tk.hello.ptr), uint64(e.tk.hello.len), uint64(e.tk.result)}}}}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), hostileHang)
	defer cancel()
	st, err := e.r.Run(ctx, e.cmd, RunSpec{Stdin: bytes.NewReader(p.bytes()), Stdout: &out, MemoryLimitBytes: hostileMemLimit})
	if err != nil || st.Reason != ReasonCompleted || out.String() != "hello\n" {
		t.Fatalf("a good guest after hostile ones: %+v, %v, stdout %q", st, err, out.String())
	}
}

func (e *hostileEnv) op(tb testing.TB, name string) uint32 {
	tb.Helper()
	if name == "memory.grow" {
		return uint32(len(e.imps))
	}
	for i, imp := range e.imps {
		if imp.name == name {
			return uint32(i)
		}
	}
	tb.Fatalf("no host function %s", name)
	return 0
}

// cappedWriter keeps the first 4 KiB a guest writes and counts the rest:
// a guest's output must not grow the test's memory.
type cappedWriter struct {
	b bytes.Buffer
	n int64
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if room := 4096 - w.b.Len(); room > 0 {
		w.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// hostileDirs are a run's mounts, /data (read-write, guest fd 3) and /ro
// (read-only, fd 4), beside a sentinel file the guest must not reach.
type hostileDirs struct{ parent, data, ro string }

const hostileSentinel = "the guest must not change this\n"

func makeHostileDirs(t *testing.T) hostileDirs {
	t.Helper()
	parent := t.TempDir()
	d := hostileDirs{parent: parent, data: filepath.Join(parent, "data"), ro: filepath.Join(parent, "ro")}
	for _, err := range []error{
		os.Mkdir(d.data, 0o755),
		os.Mkdir(d.ro, 0o755),
		os.WriteFile(filepath.Join(d.ro, "ro.txt"), []byte("read-only\n"), 0o644),
		os.WriteFile(filepath.Join(parent, "sentinel"), []byte(hostileSentinel), 0o644),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func (d hostileDirs) mounts() []Mount {
	return []Mount{{HostPath: d.data, GuestPath: "/data"}, {HostPath: d.ro, GuestPath: "/ro", ReadOnly: true}}
}

// check fails if anything changed outside /data.
func (d hostileDirs) check(t *testing.T) {
	t.Helper()
	if got := listDir(t, d.parent); !slices.Equal(got, []string{"data", "ro", "sentinel"}) {
		t.Fatalf("the guest changed the directory holding its mounts: %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(d.parent, "sentinel")); err != nil || string(b) != hostileSentinel {
		t.Fatalf("the guest reached the sentinel beside its mounts: %q, %v", b, err)
	}
	if got := listDir(t, d.ro); !slices.Equal(got, []string{"ro.txt"}) {
		t.Fatalf("the guest changed its read-only mount: %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(d.ro, "ro.txt")); err != nil || string(b) != "read-only\n" {
		t.Fatalf("the guest changed a file of its read-only mount: %q, %v", b, err)
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestHostileGuestCoversHostModules fails when the runtime registers a host
// module the hostile guest does not import (hostileHostModules).
func TestHostileGuestCoversHostModules(t *testing.T) {
	fset := token.NewFileSet()
	found := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "NewHostModuleBuilder" || len(call.Args) != 1 {
				return true
			}
			var arg strings.Builder
			if err := printer.Fprint(&arg, fset, call.Args[0]); err != nil {
				t.Fatal(err)
			}
			found++
			if _, ok := hostileHostModules[arg.String()]; !ok {
				t.Errorf("%s: host module %s is not in hostileHostModules: the hostile-guest fuzz test would not call its functions",
					fset.Position(call.Pos()), arg.String())
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatal("found no NewHostModuleBuilder call: the search is broken")
	}
}

// The seed corpus: named programs that reach each area of the host (files,
// mounts, sockets, poll, stdio, the handler ABI) and the inputs of the bugs
// this fuzz test found. TestHostileSeeds checks that the files under
// testdata/fuzz/FuzzHostileGuest match this table (function numbers depend
// on the sorted list of host functions); -hostile.writeseeds rewrites them.
var writeHostileSeeds = flag.Bool("hostile.writeseeds", false, "rewrite the hostile-guest seed corpus")

// WASI flags used by the seeds.
const (
	oCreat, oDirectory, oTrunc        = 1, 2, 8
	fdNonblock                        = 4
	allRights                  uint64 = math.MaxUint64
	fl                                = 5 // after stdio and the two mounts of hostileDirs
	sk                                = abi.FirstSocketFD
)

type hostileCall struct {
	name string
	args []any // integers, or a span for a pointer and its length
}

func call(name string, args ...any) hostileCall { return hostileCall{name, args} }

// encode writes a seed: head (the mode and handler bytes), then each call
// with every argument raw.
func (e *hostileEnv) encode(tb testing.TB, head []byte, calls ...hostileCall) []byte {
	tb.Helper()
	b := slices.Clone(head)
	for _, c := range calls {
		op := e.op(tb, c.name)
		b = append(b, byte(op))
		var args []uint64
		for _, a := range c.args {
			switch a := a.(type) {
			case int:
				args = append(args, uint64(a))
			case uint32:
				args = append(args, uint64(a))
			case uint64:
				args = append(args, a)
			case span:
				args = append(args, uint64(a.ptr), uint64(a.len))
			default:
				tb.Fatalf("%s: argument %v of type %T", c.name, a, a)
			}
		}
		want := 1 // memory.grow
		if int(op) < len(e.imps) {
			want = len(e.imps[op].params)
		}
		if len(args) != want {
			tb.Fatalf("%s: %d arguments, want %d", c.name, len(args), want)
		}
		for _, a := range args {
			b = append(b, 0) // raw
			b = binary.LittleEndian.AppendUint64(b, a)
		}
	}
	return b
}

func (e *hostileEnv) path(tb testing.TB, p string) span {
	tb.Helper()
	for _, s := range e.tk.paths {
		if string(e.tk.data[s.ptr-hostileToolkit:][:s.len]) == p {
			return s
		}
	}
	tb.Fatalf("no toolkit path %q", p)
	return span{}
}

// handlerHead is the start of a handler seed: skiff_http_alloc answers
// alloc (0: a good buffer), skiff_http_handle answers result.
func (e *hostileEnv) handlerHead(tb testing.TB, alloc uint32, result uint64) []byte {
	tb.Helper()
	sel := byte(0)
	if alloc != 0 {
		ptrs := e.tk.pointers()
		for s := 0x80; s < 0x100 && sel == 0; s++ {
			if uint32(ptrs[s%len(ptrs)]) == alloc {
				sel = byte(s)
			}
		}
		if sel == 0 {
			tb.Fatalf("no selector picks alloc result %#x", alloc)
		}
	}
	return binary.LittleEndian.AppendUint64([]byte{1, sel, 0}, result)
}

func (e *hostileEnv) seeds(tb testing.TB) map[string][]byte {
	tk := e.tk
	p := func(s string) span { return e.path(tb, s) }
	iov, iov2, hello := tk.iovs[0], tk.iovs[1], tk.hello
	res := tk.result
	const cmd, twoListeners, dial = 0, 2, 4
	ok := tk.responses[0].packed()
	return map[string][]byte{
		"empty": e.encode(tb, []byte{cmd}),
		// Messaging and key-value (host module skiff): a subscription that
		// gets the guest's own message, a request nobody answers in time,
		// compare-and-set, a watch, and ids and lengths that are wrong.
		"app": e.encode(tb, []byte{cmd},
			call("skiff_msg_subscribe", p("d"), p(""), res), call("skiff_msg_publish", p("d"), p(""), p("f")),
			call("skiff_msg_next", 1, 100, res), call("skiff_result_read", tk.buf, 17), call("skiff_result_read", tk.buf, 18),
			call("skiff_msg_request", p("d"), p("f"), 100, res), call("skiff_kv_watch", p("d"), res),
			call("skiff_kv_put", p("d"), p("f"), res), call("skiff_kv_get", p("d"), res),
			call("skiff_kv_create", p("d"), p("f"), res), call("skiff_kv_update", p("d"), p("f"), 1, res),
			call("skiff_kv_update", p("d"), p("f"), 7, res), call("skiff_kv_delete", p("d")),
			call("skiff_kv_next", 2, 0, res), call("skiff_msg_next", 2, 0, res), call("skiff_msg_unsubscribe", 1),
			call("skiff_kv_unwatch", 2), call("skiff_msg_next", 1, 1000, res),
			call("skiff_msg_publish", p(".."), p(""), p("f")), call("skiff_kv_get", p("../sentinel"), res),
			call("skiff_msg_request", p("d"), 0, math.MaxUint32, math.MaxUint32, res),
			call("skiff_msg_subscribe", p("d"), p(strings.Repeat("a", 300)), hostileMemLimit-2)),
		"hello": e.encode(tb, []byte{cmd}, call("fd_write", 1, hello, res)),
		"exit":  e.encode(tb, []byte{cmd}, call("proc_exit", 3), call("fd_write", 1, hello, res)),
		"memory": e.encode(tb, []byte{cmd},
			call("memory.grow", 16), call("memory.grow", 2), call("memory.grow", math.MaxUint32),
			call("fd_read", 0, tk.iovs[6], res), call("random_get", hostileMemLimit-16, 16),
			call("random_get", hostileMemLimit-16, 17), call("random_get", 0, math.MaxUint32)),
		"files": e.encode(tb, []byte{cmd},
			call("path_create_directory", 3, p("d")),
			call("path_open", 3, 0, p("d/f"), oCreat, allRights, allRights, 0, res), // fd 5
			call("fd_write", 5, iov2, res), call("fd_pwrite", 5, hello, 1<<40, res),
			call("fd_seek", 5, -1, 2, res), call("fd_allocate", 5, 1<<62, 1<<62), call("fd_filestat_set_size", 5, 1<<40),
			call("fd_pread", 5, iov, 0, res), call("fd_readdir", 3, tk.buf, 128, 0, res),
			call("fd_readdir", 3, pageSize-8, math.MaxUint32, uint64(math.MaxUint64), res),
			call("path_filestat_get", 3, 1, p("d/f"), res), call("path_readlink", 3, p("d/f"), tk.buf, 64, res),
			call("fd_close", 5), call("fd_close", 5), call("path_unlink_file", 3, p("d/f")),
			call("path_remove_directory", 3, p("d"))),
		"escape": e.encode(tb, []byte{cmd},
			call("path_symlink", p("../sentinel"), 3, p("l")),
			call("path_symlink", p("/etc/passwd"), 3, p("l")),
			call("path_symlink", p("f"), 3, p("l")),
			call("path_open", 3, 1, p("l"), oCreat|oTrunc, allRights, allRights, 0, res),
			call("path_open", 3, 0, p("../sentinel"), oTrunc, allRights, allRights, 0, res),
			call("path_open", 3, 0, p("/etc/passwd"), 0, allRights, allRights, 0, res),
			call("path_open", 3, 0, p("d/../../sentinel"), 0, allRights, allRights, 0, res),
			call("path_rename", 3, p("f"), 3, p("../sentinel")),
			call("path_link", 3, 0, p("f"), 3, p("../../../../etc/passwd")),
			call("path_unlink_file", 3, p("../sentinel")),
			call("path_create_directory", 3, p("..")),
			call("path_open", 3, 0, p("f\x00x"), oCreat, allRights, allRights, 0, res),
			call("path_open", 3, 0, p(strings.Repeat("a", 300)), oCreat, allRights, allRights, 0, res)),
		"readonly": e.encode(tb, []byte{cmd},
			call("path_open", 4, 0, p("ro.txt"), oTrunc, allRights, allRights, 0, res),
			call("path_open", 4, 0, p("ro.txt"), 0, allRights, allRights, 1, res), // append
			call("fd_write", 5, hello, res),
			call("path_unlink_file", 4, p("ro.txt")), call("path_create_directory", 4, p("d")),
			call("path_rename", 4, p("ro.txt"), 3, p("f")),
			call("path_filestat_set_times", 4, 0, p("ro.txt"), 0, 0, 15),
			call("path_symlink", p("f"), 4, p("l"))),
		"sockets": e.encode(tb, []byte{cmd | dial},
			call("sock_accept", fl, 0, res), // fd sk
			call("sock_recv", sk, iov, 0, res, res+4),
			call("fd_fdstat_set_flags", sk, fdNonblock), // the reads below would wait for the deadline
			call("sock_recv", sk, iov, 3, res, res+4),
			call("sock_send", sk, hello, 0, res), call("sock_send", sk, hello, 1, res),
			call("fd_read", sk, iov, res),
			call("fd_fdstat_get", sk, res), call("fd_filestat_get", sk, res),
			call("sock_shutdown", sk, 3), call("sock_shutdown", sk, 7),
			call("fd_seek", sk, 0, 0, res), call("path_open", fl, 0, p("f"), 0, 0, 0, 0, res),
			call("fd_renumber", sk, 5), call("fd_renumber", 0, fl),
			call("fd_close", sk), call("fd_close", fl),
			call("sock_accept", fl, 0, res), call("sock_accept", sk+1, 0, res)),
		"sockets-faults": e.encode(tb, []byte{cmd | dial | twoListeners},
			call("sock_accept", fl, 0, math.MaxUint32), // the connection is accepted, the result cannot be written
			call("fd_fdstat_set_flags", sk, fdNonblock), call("sock_accept", sk, 0, res),
			call("sock_accept", sk, fdNonblock, res),
			call("sock_recv", sk+1, tk.iovs[4], 0, res, res+4), call("sock_send", sk+1, tk.iovs[5], 0, res),
			call("fd_write", sk+1, math.MaxUint32-3, 1<<30, res),
			call("poll_oneoff", tk.subs, tk.events, 8, res),
			call("fd_fdstat_get", fl, math.MaxUint32)),
		"poll": e.encode(tb, []byte{cmd | dial},
			call("poll_oneoff", tk.subs, tk.events, 8, res),
			call("poll_oneoff", tk.subs+48, tk.events, 2, res),
			call("poll_oneoff", tk.subs+3*48, tk.events, 3, res),
			call("poll_oneoff", tk.subs+6*48, tk.events, 1, res),
			call("poll_oneoff", tk.subs, math.MaxUint32-16, 8, res),
			call("poll_oneoff", tk.subs, tk.events, 1<<16+1, res),
			call("poll_oneoff", tk.subs, tk.events, 0, res),
			call("poll_oneoff", 0, 0, 1<<16, res)),
		"stdio": e.encode(tb, []byte{cmd},
			call("fd_fdstat_set_flags", 0, fdNonblock), call("fd_fdstat_set_flags", 1, math.MaxUint16),
			call("fd_read", 0, iov, res), call("fd_close", 0), call("fd_read", 0, iov, res),
			call("fd_renumber", 1, 2), call("fd_close", 1), call("fd_write", 1, hello, res),
			call("fd_fdstat_set_rights", 2, 0, 0), call("fd_sync", 2), call("fd_datasync", 2),
			call("fd_advise", 2, 0, 0, 9), call("fd_tell", 2, res),
			call("fd_filestat_set_times", 2, 0, 0, 10)),
		// Found by the fuzzer: wazero 1.12 panicked setting the times of
		// stdio that is a Go reader or writer.
		"found-stdio-set-times": e.encode(tb, []byte{cmd},
			call("fd_filestat_set_times", 0, 0, 0, 2), call("fd_filestat_set_times", 1, 0, 0, 8)),
		// Found by the fuzzer: a listener named as the directory of
		// path_symlink (not the first parameter, so the socket functions
		// did not answer for it) made wazero panic opening its place.
		"found-symlink-at-listener": e.encode(tb, []byte{cmd},
			call("path_symlink", p("f"), fl, p("d")), call("path_link", 3, 0, p("f"), fl, p("l")),
			call("path_rename", 3, p("f"), fl, p("l")), call("path_open", fl, 0, p("f"), 0, 0, 0, 0, res)),
		// Found by the fuzzer: path_remove_directory(3, "") removed the
		// mounted host directory.
		"found-rmdir-mount": e.encode(tb, []byte{cmd},
			call("path_remove_directory", 3, p("")), call("path_remove_directory", 3, p(".")),
			call("path_remove_directory", 3, p("d/..")), call("path_remove_directory", 3, p("./")),
			call("path_create_directory", 3, p("d")),
			call("path_rename", 3, p("."), 3, p("d")), call("path_rename", 3, p("d"), 3, p("")),
			call("path_rename", 3, p(""), 4, p("d")),
			call("path_open", 3, 0, p(""), oDirectory, 0, 0, 0, res), // fd 5
			call("path_remove_directory", 5, p("")), call("path_remove_directory", 5, p("d/..")),
			call("path_remove_directory", 4, p(""))),
		"process": e.encode(tb, []byte{cmd},
			call("args_sizes_get", res, res+4), call("args_get", math.MaxUint32-3, tk.buf),
			call("args_get", tk.buf, pageSize-1), call("environ_sizes_get", res, math.MaxUint32),
			call("environ_get", tk.buf, tk.buf+8), call("clock_time_get", 0, 0, res),
			call("clock_time_get", 99, 0, res), call("clock_res_get", 1, math.MaxUint32),
			call("random_get", tk.buf, 0), call("sched_yield"), call("proc_raise", 9)),
		"preopens": e.encode(tb, []byte{cmd},
			call("fd_prestat_get", 3, res), call("fd_prestat_dir_name", 3, tk.buf, math.MaxUint32),
			call("fd_prestat_dir_name", 4, math.MaxUint32, 4), call("fd_close", 3),
			call("fd_renumber", 4, 3), call("fd_seek", 3, 0, 0, res), call("fd_read", 3, iov, res),
			call("fd_write", 4, hello, res), call("fd_filestat_set_times", 4, 0, 0, 15)),
		// A file renumbered to a huge descriptor: wazero 1.12 grows its
		// descriptor table to that number (8 bytes per entry), here 128
		// MiB outside the guest's memory limit, 16 GiB for 2^31-1.
		"renumber-huge": e.encode(tb, []byte{cmd},
			call("path_open", 3, 0, p("f"), oCreat, allRights, allRights, 0, res), // fd 5
			call("fd_renumber", 5, 1<<24-1), call("fd_write", 1<<24-1, hello, res), call("fd_close", 1<<24-1)),
		"renumber-huge-handler": e.encode(tb, e.handlerHead(tb, 0, ok),
			call("path_open", 3, 0, p("f"), oCreat, allRights, allRights, 0, res),
			call("fd_renumber", 5, 1<<25)),

		"handler-ok":                e.encode(tb, e.handlerHead(tb, 0, ok), call("fd_write", 1, hello, res)),
		"handler-bad-alloc":         e.encode(tb, e.handlerHead(tb, math.MaxUint32-3, ok)),
		"handler-exit":              e.encode(tb, e.handlerHead(tb, 0, ok), call("proc_exit", 0)),
		"handler-status":            e.encode(tb, e.handlerHead(tb, 0, tk.responses[1].packed())),
		"handler-status-1000":       e.encode(tb, e.handlerHead(tb, 0, tk.responses[2].packed())),
		"handler-header-count":      e.encode(tb, e.handlerHead(tb, 0, tk.responses[4].packed())),
		"handler-content-length":    e.encode(tb, e.handlerHead(tb, 0, tk.responses[5].packed())),
		"handler-transfer-encoding": e.encode(tb, e.handlerHead(tb, 0, tk.responses[6].packed())),
		"handler-header-injection":  e.encode(tb, e.handlerHead(tb, 0, tk.responses[7].packed())),
		"handler-204-body":          e.encode(tb, e.handlerHead(tb, 0, tk.responses[8].packed())),
		"handler-odd-headers":       e.encode(tb, e.handlerHead(tb, 0, tk.responses[9].packed())),
		"handler-outside-memory":    e.encode(tb, e.handlerHead(tb, 0, 0xfffffff0<<32|64)),
		"handler-sockets": e.encode(tb, e.handlerHead(tb, 0, ok),
			call("sock_accept", fl, 0, res), call("sock_recv", fl, iov, 0, res, res+4),
			call("poll_oneoff", tk.subs, tk.events, 8, res), call("fd_renumber", 0, fl)),
	}
}

// TestHostileSeeds checks (or with -hostile.writeseeds writes) the seed
// corpus files. Files it does not know, such as crashers the fuzzer saved,
// are left alone.
func TestHostileSeeds(t *testing.T) {
	e := newHostileEnv(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzHostileGuest")
	for name, data := range e.seeds(t) {
		file := filepath.Join(dir, name)
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if *writeHostileSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(file)
		if err != nil || string(got) != want {
			t.Errorf("seed %s is missing or stale (%v): run go test ./runtime/wasm/ -run TestHostileSeeds -hostile.writeseeds", file, err)
		}
	}
}

var dumpHostile = flag.String("hostile.dump", "", "print the program of this corpus file (a crasher, a seed) as calls, and pass")

// TestHostileDump prints a fuzz input as the calls it makes, to read a
// crasher: go test ./runtime/wasm/ -run TestHostileDump -hostile.dump FILE -v
func TestHostileDump(t *testing.T) {
	if *dumpHostile == "" {
		t.Skip("no -hostile.dump file")
	}
	b, err := os.ReadFile(*dumpHostile)
	if err != nil {
		t.Fatal(err)
	}
	_, quoted, ok := strings.Cut(string(b), "[]byte(")
	if !ok {
		t.Fatalf("%s is not a []byte corpus file", *dumpHostile)
	}
	data, err := strconv.Unquote(strings.TrimSuffix(strings.TrimSpace(quoted), ")"))
	if err != nil {
		t.Fatal(err)
	}
	e := newHostileEnv(t)
	p := decodeHostile([]byte(data), e.imps, &e.tk)
	t.Logf("handler %v, listeners %d, dial %v, alloc result %#x, handle result %#x", p.handler, p.listeners, p.dial, p.allocResult, p.handleResult)
	for _, r := range p.recs {
		if int(r.op) == len(e.imps) {
			t.Logf("memory.grow(%#x)", r.args[0])
			continue
		}
		imp := e.imps[r.op]
		var args []string
		for j, n := range imp.paramNames {
			a := fmt.Sprintf("%s=%#x", n, r.args[j])
			if s, ok := e.tk.stringAt(r.args[j], r.args[j+1:]); ok && strings.Contains(n, "path") {
				a += fmt.Sprintf("(%q)", s)
			}
			args = append(args, a)
		}
		t.Logf("%s(%s)", imp.name, strings.Join(args, ", "))
	}
}

// stringAt returns the toolkit path at ptr if the next argument is its
// length.
func (tk *toolkit) stringAt(ptr uint64, rest []uint64) (string, bool) {
	for _, s := range tk.paths {
		if uint64(s.ptr) == ptr && len(rest) > 0 && rest[0] == uint64(s.len) {
			return string(tk.data[s.ptr-hostileToolkit:][:s.len]), true
		}
	}
	return "", false
}
