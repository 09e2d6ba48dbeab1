package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/dispatch"
	"github.com/skiffhq/skiff/internal/testutil"
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

// testDispatcher waits for the running term's pod dispatcher, other than
// old, and returns it.
func (e *Engine) testDispatcher(t *testing.T, old *dispatch.Dispatcher) *dispatch.Dispatcher {
	t.Helper()
	e.mu.Lock()
	loops := e.loops
	e.mu.Unlock()
	var d *dispatch.Dispatcher
	testutil.Eventually(t, 10*time.Second, func() error {
		if d = loops.dispatcher(); d == nil || d == old {
			return errors.New("no new control loops term yet")
		}
		return nil
	})
	return d
}

// testRestartControlPlane ends the leader's term of control loops, as a
// control plane restart would, and returns the next term's dispatcher once
// it runs: fresh informers, node lifecycle and dispatcher epoch.
func (e *Engine) testRestartControlPlane(t *testing.T) *dispatch.Dispatcher {
	t.Helper()
	old := e.testDispatcher(t, nil)
	e.mu.Lock()
	gate := e.gate
	e.mu.Unlock()
	gate.Restart()
	return e.testDispatcher(t, old)
}
