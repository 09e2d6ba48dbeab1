package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/skiffhq/skiff/engine"
	"github.com/skiffhq/skiff/raft"
)

// An embedding program starts a member in a directory of its own and uses the
// replicated store.
func Example() {
	dir, _ := os.MkdirTemp("", "skiff-example")
	defer os.RemoveAll(dir)

	e, err := engine.New(engine.Config{
		DataDir:  dir,
		NodeName: "example",
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer e.Stop(ctx)

	s := e.Store()
	kv, _ := s.Create(ctx, "/registry/configmaps/default/greeting", []byte("hello"))
	got, _, _ := s.Get(ctx, kv.Key, raft.ReadOptions{})
	fmt.Printf("%s = %s (created and modified at the same revision: %v)\n", got.Key, got.Value, got.CreateRev == got.ModRev)
	// Output: /registry/configmaps/default/greeting = hello (created and modified at the same revision: true)
}
