package sleeper

import (
	"context"
	"testing"
	"time"

	"github.com/skiffhq/skiff/runtime/wasm"
)

// The sleeper must compile, and must keep running until it is stopped: a
// module that exited at once would make the benchmark measure nothing.
func TestSleeperRunsUntilStopped(t *testing.T) {
	ctx := context.Background()
	rt, err := wasm.New(ctx, wasm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	mod, err := rt.Compile(ctx, Module())
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	runCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	st, err := rt.Run(runCtx, mod, wasm.RunSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Reason != wasm.ReasonKilled {
		t.Fatalf("sleeper ended on its own: %+v", st)
	}
}
