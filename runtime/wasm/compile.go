package wasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
)

// Module is a compiled Wasm module, ready to Run any number of times, also
// concurrently. It belongs to the Runtime that compiled it and lives as long
// as that Runtime.
type Module struct {
	r        *Runtime
	digest   string
	compiled wazero.CompiledModule

	// command is whether the module exports `_start` with type () -> ().
	command bool
	// minPages is the largest initial size of the module's exported or
	// imported memories, checked against a Run's memory limit before
	// instantiating (see RunSpec.MemoryLimitBytes).
	minPages uint32
}

// Digest is "sha256:" and the hex sha256 of the module's bytes: the key under
// which the Runtime keeps it, and the digest an OCI layer of it carries.
func (m *Module) Digest() string { return m.digest }

// CacheStats counts how Compile calls were served, so callers (and tests) can
// see that the caches work without measuring time.
type CacheStats struct {
	// MemoryHits counts Compile calls answered from this Runtime's own table
	// of modules (the same bytes were compiled, or were being compiled, by
	// an earlier call): no work at all.
	MemoryHits uint64

	// DiskHits counts compilations that wazero served from Config.CacheDir:
	// machine code compiled by an earlier Runtime, possibly in an earlier
	// process, was loaded instead of compiled.
	//
	// wazero does not report this itself. The evidence is that wazero wrote
	// no entry into CacheDir during the compilation: it writes one (a new
	// file, renamed into place) every time it compiles, and none when it
	// loads. Compilations are serialised, so no other compilation can write
	// in between.
	DiskHits uint64

	// Compiled counts modules that were really compiled to machine code
	// (or prepared for the interpreter).
	Compiled uint64
}

// CacheStats returns the counts since New.
func (r *Runtime) CacheStats() CacheStats {
	return CacheStats{
		MemoryHits: r.memoryHits.Load(),
		DiskHits:   r.diskHits.Load(),
		Compiled:   r.compiled.Load(),
	}
}

// compileCall is one compilation shared by every Compile of the same bytes.
type compileCall struct {
	done chan struct{} // closed when mod or err is set
	mod  *Module
	err  error
}

// Compile compiles a module, or returns the one already compiled from the
// same bytes: modules are keyed by the sha256 of their bytes, so compiling
// the same bytes twice, also concurrently, is one compilation.
//
// The compilation runs detached from ctx, so one caller giving up does not
// fail others waiting for the same module; when ctx ends first, Compile
// returns ctx's error and the result is kept for the next call. Compile keeps
// no reference to wasm.
func (r *Runtime) Compile(ctx context.Context, wasm []byte) (*Module, error) {
	key := sha256.Sum256(wasm)

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	call, shared := r.modules[key]
	if !shared {
		call = &compileCall{done: make(chan struct{})}
		r.modules[key] = call
		r.work.Add(1)
		// wazero may keep slices of the binary (data segments), and the
		// caller may reuse its buffer once we return.
		go r.compile(key, bytes.Clone(wasm), call)
	}
	r.mu.Unlock()

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("wasm: compile sha256:%x: %w", key, err)
	}
	select {
	case <-call.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("wasm: compile sha256:%x: %w", key, ctx.Err())
	}
	if call.err != nil {
		return nil, call.err
	}
	if shared {
		r.memoryHits.Add(1)
	}
	return call.mod, nil
}

// compile does the work of one compileCall on its own goroutine.
func (r *Runtime) compile(key [32]byte, bin []byte, call *compileCall) {
	defer r.work.Done()
	defer close(call.done)

	digest := "sha256:" + hex.EncodeToString(key[:])
	mod, err := r.compileModule(digest, bin)
	if err != nil {
		call.err = err
		// Forget the failure so a later call can retry: the cause may have
		// been the Runtime closing rather than the bytes.
		r.mu.Lock()
		if r.modules[key] == call {
			delete(r.modules, key)
		}
		r.mu.Unlock()
		return
	}
	call.mod = mod
}

func (r *Runtime) compileModule(digest string, bin []byte) (*Module, error) {
	r.compileMu.Lock()
	defer r.compileMu.Unlock()

	// Bound by the Runtime's life: Close cancels a long compilation.
	ctx := experimental.WithCompilationWorkers(r.life, goruntime.GOMAXPROCS(0))

	var before cacheListing
	if r.cacheDir != "" {
		before = listCache(r.cacheDir)
	}
	start := time.Now()
	compiled, err := r.wr.CompileModule(ctx, bin)
	if err != nil {
		if r.life.Err() != nil {
			return nil, fmt.Errorf("wasm: compile %s: %w", digest, ErrClosed)
		}
		return nil, fmt.Errorf("wasm: compile %s: %w: %w", digest, ErrCompile, err)
	}

	source := "compiled"
	if r.cacheDir != "" && !listCache(r.cacheDir).wroteSince(before) {
		source = "disk"
		r.diskHits.Add(1)
	} else {
		r.compiled.Add(1)
	}
	r.log.Debug("wasm module compiled", "digest", digest, "source", source,
		"bytes", len(bin), "duration", time.Since(start))

	m := &Module{r: r, digest: digest, compiled: compiled}
	if fn, ok := compiled.ExportedFunctions()["_start"]; ok &&
		len(fn.ParamTypes()) == 0 && len(fn.ResultTypes()) == 0 {
		m.command = true
	}
	for _, mem := range compiled.ExportedMemories() {
		m.minPages = max(m.minPages, mem.Min())
	}
	for _, mem := range compiled.ImportedMemories() {
		m.minPages = max(m.minPages, mem.Min())
	}
	return m, nil
}

// cacheListing is what wazero's on-disk cache held at one moment: the entry
// names, and the modification times of the directories holding them (a
// rename over an existing entry changes no name but touches its directory).
type cacheListing struct {
	names map[string]struct{}
	mtime map[string]time.Time
}

// listCache lists CacheDir and its subdirectories (wazero keeps entries in
// one subdirectory per wazero version and platform). Errors leave the
// listing short, which at worst counts a disk hit as a compilation.
func listCache(dir string) cacheListing {
	l := cacheListing{names: map[string]struct{}{}, mtime: map[string]time.Time{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return l
	}
	for _, e := range entries {
		if !e.IsDir() {
			l.names[e.Name()] = struct{}{}
			continue
		}
		sub := filepath.Join(dir, e.Name())
		if fi, err := os.Stat(sub); err == nil {
			l.mtime[e.Name()] = fi.ModTime()
		}
		f, err := os.Open(sub)
		if err != nil {
			continue
		}
		names, err := f.Readdirnames(-1)
		_ = f.Close()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			continue
		}
		for _, n := range names {
			l.names[e.Name()+"/"+n] = struct{}{}
		}
	}
	return l
}

// wroteSince reports whether anything was added or replaced since before.
func (l cacheListing) wroteSince(before cacheListing) bool {
	for n := range l.names {
		if _, ok := before.names[n]; !ok {
			return true
		}
	}
	for d, t := range l.mtime {
		if bt, ok := before.mtime[d]; !ok || !bt.Equal(t) {
			return true
		}
	}
	return false
}
