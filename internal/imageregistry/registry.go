package imageregistry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/skiffhq/skiff/internal/bus"
)

// Host is the registry host name that stands for the embedded registry in
// image references ("registry.skiff.local/hello:1"). It is never resolved
// through DNS: Transport carries requests for it over the bus.
const Host = "registry.skiff.local"

// Defaults of Config.
const (
	// DefaultMaxBlobSize bounds one blob. Wasm modules are KiBs to tens of
	// MiB; container layers rarely pass a few hundred MiB. A larger blob
	// answers 413 SIZE_INVALID.
	DefaultMaxBlobSize int64 = 512 << 20
	// DefaultMaxUploads bounds the uploads in progress, and with
	// MaxBlobSize the disk they may hold. One more answers 429.
	DefaultMaxUploads = 32
	// DefaultUploadIdleTimeout is how long an upload may sit untouched
	// before it is dropped (a client that died mid-push).
	DefaultUploadIdleTimeout = 15 * time.Minute
	// maxManifestSize is what the OCI distribution spec asks registries to
	// accept at least; anything larger is not a manifest a client needs.
	maxManifestSize = 4 << 20
)

// Config of a Registry.
type Config struct {
	// Bus is a connection to a bus server with JetStream enabled
	// (bus.Config.JetStreamDir). Required. The registry does not close it.
	Bus *bus.Conn
	// Replicas is how many servers keep each blob, manifest and tag (1 to
	// 5, JetStream's limit). Default 1. A cluster uses min(3, servers): a
	// write is acknowledged once a majority of the replicas has it.
	Replicas int
	// UploadDir holds blob uploads in progress; they are hashed there and
	// moved into the store when complete. Required. Leftovers from an
	// earlier run are removed by Open.
	UploadDir string
	// MaxBlobSize bounds one blob in bytes. Default DefaultMaxBlobSize.
	MaxBlobSize int64
	// MaxUploads bounds the uploads in progress. Default DefaultMaxUploads.
	MaxUploads int
	// UploadIdleTimeout drops uploads untouched this long. Default
	// DefaultUploadIdleTimeout.
	UploadIdleTimeout time.Duration
	// Logger receives stored blobs and manifests (Info) and store failures
	// (Error). Default slog.Default().
	Logger *slog.Logger
	// Peers are the other servers' registries of a cluster whose servers
	// each keep their own store: pushes are copied to them and misses are
	// fetched from them. Nil (one server): neither happens.
	Peers *Peers
}

// Registry is an OCI distribution registry whose content lives in JetStream.
// It is safe for concurrent use.
type Registry struct {
	cfg     Config
	log     *slog.Logger
	store   *store
	uploads *uploads

	// Work with Peers: fan-outs in flight (a semaphore), the background
	// work Close cancels and waits for, one pull per object at a time, and
	// the peers pull-through skips for a while.
	fanOuts  chan struct{}
	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
	pulls    keyedMutex
	down     downPeers
}

// Open creates the registry's JetStream buckets if they do not exist yet
// (or raises their replica count to cfg.Replicas) and returns a registry
// ready to serve.
func Open(ctx context.Context, cfg Config) (*Registry, error) {
	if cfg.Bus == nil {
		return nil, errors.New("registry: Config.Bus is required")
	}
	if cfg.UploadDir == "" {
		return nil, errors.New("registry: Config.UploadDir is required")
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Replicas < 1 || cfg.Replicas > 5 {
		return nil, fmt.Errorf("registry: Replicas %d is not in 1-5", cfg.Replicas)
	}
	if cfg.MaxBlobSize <= 0 {
		cfg.MaxBlobSize = DefaultMaxBlobSize
	}
	if cfg.MaxUploads <= 0 {
		cfg.MaxUploads = DefaultMaxUploads
	}
	if cfg.UploadIdleTimeout <= 0 {
		cfg.UploadIdleTimeout = DefaultUploadIdleTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Uploads do not survive a restart (their hash state is in memory):
	// whatever is left is garbage.
	if err := os.RemoveAll(cfg.UploadDir); err != nil {
		return nil, fmt.Errorf("registry: clear upload dir: %w", err)
	}
	if err := os.MkdirAll(cfg.UploadDir, 0o700); err != nil {
		return nil, fmt.Errorf("registry: create upload dir: %w", err)
	}
	st, err := openStore(ctx, cfg.Bus.NATS(), cfg.Replicas)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if cfg.Peers != nil && (cfg.Peers.Client == nil || cfg.Peers.Token == "") {
		return nil, errors.New("registry: Config.Peers needs a Client and a Token")
	}
	r := &Registry{cfg: cfg, log: cfg.Logger.With("component", "registry"), store: st, fanOuts: make(chan struct{}, maxFanOuts)}
	r.bgCtx, r.bgCancel = context.WithCancel(context.Background())
	r.uploads = newUploads(cfg.UploadDir, cfg.MaxUploads, cfg.UploadIdleTimeout)
	return r, nil
}

// Close stops the copies to peers in progress and drops the uploads in
// progress. Requests still being served fail.
func (r *Registry) Close() {
	r.bgCancel()
	r.bg.Wait()
	r.uploads.closeAll()
}
