package engine

import (
	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/raft"
	"github.com/skiffhq/skiff/runtime/wasm"
)

// The engine's parts, for its own tests. Embedders get none of these: they
// reach the cluster through the API (Clientset, RESTConfig).

func (e *Engine) testStore() *raft.Store {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.store
}

func (e *Engine) testBus() *bus.Server {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bus
}

func (e *Engine) testWasm() *wasm.Runtime {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.wasm
}
