// Package benchenv is what the API-level benchmarks (apibench, nsbench,
// schedbench, hbbench) share: a one-server raft store and an API server on
// it in a temporary directory, a bounded parallel loop, and the versions
// line each prints beside its figures.
package benchenv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"

	"github.com/skiffhq/skiff/internal/apiserver"
	"github.com/skiffhq/skiff/raft"
)

// Env is a store and an API server for one benchmark run.
type Env struct {
	Dir   string // removed by Close
	Store *raft.Store
	API   *apiserver.Server
}

// Start opens a store in a new directory under parent (the system's
// temporary directory when empty), named after prefix, waits for it to
// lead, and starts an API server on it listening on listen
// ("127.0.0.1:0" when empty). The caller closes the Env.
func Start(ctx context.Context, parent, prefix, listen string, log *slog.Logger) (_ *Env, err error) {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	dir, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.Store, err = raft.Open(ctx, raft.Config{ID: "bench", Dir: filepath.Join(dir, "raft"), Bootstrap: true,
		HeartbeatTimeout: 200 * time.Millisecond, Logger: log}); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := e.Store.WaitLeader(ctx); err != nil {
		return nil, fmt.Errorf("store leader: %w", err)
	}
	api, err := apiserver.New(apiserver.Config{Listen: listen, PKIDir: filepath.Join(dir, "pki"),
		Token: "bench", Store: e.Store, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := api.Start(ctx); err != nil {
		return nil, fmt.Errorf("start API server: %w", err)
	}
	e.API = api
	return e, nil
}

// InProcess is a client configuration that reaches the API server in
// process, as the engine's controllers and embedders do, unthrottled.
func (e *Env) InProcess() *rest.Config {
	return &rest.Config{Host: "http://skiff.in-process", Transport: e.API.InProcessTransport(), QPS: -1}
}

// Close stops the API server and the store and removes the directory.
func (e *Env) Close() {
	if e.API != nil {
		e.API.Close(context.Background())
	}
	if e.Store != nil {
		e.Store.Close()
	}
	os.RemoveAll(e.Dir)
}

// Parallel runs fn for i in [0, n) on at most conc goroutines. The first
// error stops the rest and is returned; otherwise ctx's error, if it ended.
func Parallel(ctx context.Context, n, conc int, fn func(i int) error) error {
	var next atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && first.Load() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return *e
	}
	return ctx.Err()
}

// Versions is " path version" for each of the modules named that the
// binary was built with, for a benchmark's header line.
func Versions(paths ...string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var b strings.Builder
	for _, d := range bi.Deps {
		for _, p := range paths {
			if d.Path == p {
				fmt.Fprintf(&b, " %s %s", d.Path, d.Version)
			}
		}
	}
	return b.String()
}
