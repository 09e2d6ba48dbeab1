// Package image brings Wasm modules from OCI registries into a node's
// content-addressed store, as the "Module sources" part of DESIGN.md's Wasm
// workload contract describes.
//
// A [Store] resolves an image reference against its registry (anonymous,
// basic or bearer auth through go-containerregistry), honours Kubernetes'
// imagePullPolicy, finds the Wasm layer of the manifest and keeps that layer
// on disk under its sha256 digest (Dir/blobs/sha256/<hex>). A small index
// (Dir/index.json) maps references to what they resolved to, so IfNotPresent
// and Never work across restarts without touching the network.
//
// # Selecting Wasm
//
// An image is a Wasm image when its manifest has a layer of media type
// application/wasm, application/vnd.wasm.content.layer.v1+wasm or
// application/vnd.module.wasm.content.layer.v1+wasm (wasm-to-oci); that
// layer's bytes are the module. An image index (multi-platform image) is
// resolved to its wasi/wasm entry (os "wasip1" or "wasi", architecture
// "wasm").
//
// Anything else is not an error for [Store.Pull]: it returns an [Image] with
// Wasm false and no module, so the node agent can hand the pod to the OCI
// runtime instead (which keeps its own layers). Only [Store.Module] on such an
// Image fails, with [ErrNotWasm]. This keeps "is it Wasm?" a property of the
// result rather than a failure mode the caller must special-case.
//
// # Integrity
//
// Every blob is hashed while it is written (temp file in the same directory,
// fsync, rename), so a blob in the store under a digest had that digest when
// it was stored. Disks rot, so [Store.Module] hashes again on every read; a
// corrupt blob is reported as [ErrDigestMismatch] and removed, and the next
// Pull fetches it again.
//
// # Threading
//
// A Store is safe for concurrent use. Concurrent Pulls of the same reference
// with the same credentials share one registry round trip, and concurrent
// downloads of the same blob share one download, whatever reference asked.
// Only one Store (one process) may use a Dir at a time.
package image

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
)

// Errors returned by this package. Compare with errors.Is: returned errors
// wrap these with the reference and the underlying cause (for registry
// errors, the *transport.Error stays reachable with errors.As too).
var (
	// ErrNotPresent means the image is not in the local store and the pull
	// policy (Never) forbids fetching it; Kubernetes reports this as
	// ErrImageNeverPull. From Module it means the module blob is gone.
	ErrNotPresent = errors.New("image: not present in the local store")

	// ErrNotWasm means the image has no Wasm layer (or, for an image index,
	// no wasi/wasm entry): it is for an OCI runtime, not for wazero.
	ErrNotWasm = errors.New("image: not a Wasm image")

	// ErrUnauthorized means the registry (or its token service) answered 401
	// or 403: missing or wrong credentials, or no access to the repository.
	ErrUnauthorized = errors.New("image: registry denied access")

	// ErrNotFound means the registry does not know the repository, the tag
	// or digest (manifest unknown), or a blob the manifest names.
	ErrNotFound = errors.New("image: not found in the registry")

	// ErrDigestMismatch means content does not hash to the digest it is
	// stored or referenced under: a corrupt local blob, or a registry that
	// served the wrong bytes. Nothing corrupt is kept.
	ErrDigestMismatch = errors.New("image: content does not match its digest")

	// ErrInvalidReference means the image reference does not parse; the
	// kubelet reports this as InvalidImageName. Retrying cannot help.
	ErrInvalidReference = errors.New("image: invalid image reference")
)

// Media types of layers that hold a Wasm module. The first two are what
// DESIGN.md names (plain application/wasm and the CNCF Wasm OCI artifact
// layout); the third is what wasm-to-oci pushes.
const (
	MediaTypeWasm      = "application/wasm"
	MediaTypeWasmLayer = "application/vnd.wasm.content.layer.v1+wasm"
	MediaTypeWasmToOCI = "application/vnd.module.wasm.content.layer.v1+wasm"
)

const (
	defaultUserAgent = "skiff"
	// maxModuleSize bounds one module blob: a hostile or broken manifest
	// must not fill the node's disk. Real modules are KiBs to tens of MiB.
	maxModuleSize int64 = 1 << 30
	// maxConfigSize bounds the image config read; OCI configs are KiBs.
	maxConfigSize int64 = 4 << 20
)

// Config of a Store.
type Config struct {
	// Dir is the node's store: blobs by digest (Dir/blobs/sha256/<hex>) and
	// the reference index (Dir/index.json). It is created if missing.
	// Required.
	Dir string

	// Logger receives pulls (Info), cache hits (Debug) and repairs (Warn).
	// Default: discard.
	Logger *slog.Logger

	// Transport carries registry traffic. Default http.DefaultTransport.
	// Tests pass one that trusts a test CA; go-containerregistry adds its
	// retry and auth layers on top.
	Transport http.RoundTripper

	// Insecure allows plain-HTTP registries for every reference
	// (name.Insecure): for edge sites whose registry has no TLS. Default
	// false: HTTPS only, except that go-containerregistry already falls back
	// to HTTP for localhost and loopback registries.
	Insecure bool
}

// ImageConfig is the part of an OCI image config a pod's container
// defaults to: command defaults to Entrypoint, args to Cmd, as for
// containers. Empty when the image has no (parsable) config.
type ImageConfig struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
}

// Image is what a reference resolved to.
type Image struct {
	// Ref is the reference as the caller gave it.
	Ref string
	// Digest is what the reference resolved to in its registry ("sha256:…"):
	// the manifest's digest, or the image index's for a multi-platform
	// image, which is what Kubernetes shows as the container's imageID.
	Digest string
	// Module is the path of the module blob in the store, named by its own
	// digest. Empty when Wasm is false.
	Module string
	// ModuleDigest is the digest of the module ("sha256:…").
	ModuleDigest string
	// Wasm tells whether the image carries a Wasm layer. When false there is
	// no module and the image is for an OCI runtime.
	Wasm bool
	// Config holds the image's entrypoint, cmd, env and working directory.
	Config ImageConfig
}

// Store is a node's content-addressed store of Wasm modules.
type Store struct {
	dir       string
	blobDir   string
	log       *slog.Logger
	transport http.RoundTripper
	nameOpts  []name.Option

	mu       sync.Mutex // guards index and verified
	index    map[string]entry
	verified map[string]stamp // blobs hashed since they last changed, by digest

	saveMu sync.Mutex // serialises index writes so the newest snapshot lands last
	blobMu sync.Mutex // orders blob renames against removal of corrupt blobs

	pulls flightGroup[entry]
	blobs flightGroup[struct{}]
}

// New opens (or creates) the store in cfg.Dir. A corrupt index is moved
// aside and the store starts empty: the index is a cache of registry
// answers, and losing it costs a re-pull, never a crash loop.
func New(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("image: Config.Dir is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rt := cfg.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	s := &Store{
		dir:       cfg.Dir,
		blobDir:   filepath.Join(cfg.Dir, "blobs", "sha256"),
		log:       log,
		transport: rt,
		verified:  map[string]stamp{},
	}
	if cfg.Insecure {
		s.nameOpts = append(s.nameOpts, name.Insecure)
	}
	if err := os.MkdirAll(s.blobDir, 0o755); err != nil {
		return nil, fmt.Errorf("image: create store: %w", err)
	}
	s.removeStaleTemps()
	idx, err := s.loadIndex()
	if err != nil {
		return nil, err
	}
	s.index = idx
	return s, nil
}

// DefaultPolicy is the pull policy Kubernetes defaults a container to when
// imagePullPolicy is empty: Always when the reference's tag is "latest" or
// it has neither tag nor digest (the tag can move, so the node must ask),
// IfNotPresent otherwise (a pinned tag or a digest, or a reference that
// does not parse). It looks at the string only, with the reference parser
// the API server's defaulting uses.
func DefaultPolicy(ref string) corev1.PullPolicy {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return corev1.PullIfNotPresent
	}
	if tagged, ok := reference.TagNameOnly(named).(reference.Tagged); ok && tagged.Tag() == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// Pull resolves ref and makes its module present in the store, honouring
// policy as the kubelet does:
//   - Always: resolve the reference in the registry every time (a HEAD
//     request when a local copy exists); download the module only if its
//     digest is not in the store yet. Like the kubelet's, it fails when the
//     registry cannot be reached even if a copy is local: the registry is
//     also where access is checked. Offline sites use IfNotPresent.
//   - IfNotPresent: use the local copy of ref if there is one, else pull.
//   - Never: local copy only, else ErrNotPresent.
//   - "": DefaultPolicy(ref).
//
// auth supplies credentials, normally from [Keychain] over the pod's
// imagePullSecrets; nil means anonymous. When a Keychain offers several
// credentials for the registry, each is tried in turn (most specific
// first) as the kubelet does.
//
// An image without a Wasm layer is not an error: see the package
// documentation. Errors wrap ErrNotPresent, ErrUnauthorized, ErrNotFound,
// ErrDigestMismatch or ErrInvalidReference where they apply.
func (s *Store) Pull(ctx context.Context, ref string, policy corev1.PullPolicy, auth authn.Keychain) (Image, error) {
	r, err := name.ParseReference(ref, s.nameOpts...)
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w: %w", ref, ErrInvalidReference, err)
	}
	if policy == "" {
		policy = DefaultPolicy(ref)
	}
	key := r.Name()

	switch policy {
	case corev1.PullNever, corev1.PullIfNotPresent:
		if e, ok := s.lookup(key); ok && s.blobPresent(e) {
			s.log.Debug("image present", "ref", ref, "digest", e.Digest, "policy", policy)
			return s.image(ref, e), nil
		}
		if policy == corev1.PullNever {
			return Image{}, fmt.Errorf("pull %s: %w (imagePullPolicy Never)", ref, ErrNotPresent)
		}
	case corev1.PullAlways:
	default:
		return Image{}, fmt.Errorf("pull %s: unsupported imagePullPolicy %q", ref, policy)
	}

	// One registry round trip per reference and set of credentials: pods
	// of one Deployment starting together ask once. Different credentials
	// do not share, or a pod without access could ride on another's.
	flightKey := key + "\x00" + keychainID(auth)
	e, err := s.pulls.do(ctx, flightKey, func(ctx context.Context) (entry, error) {
		return s.pullRemote(ctx, r, auth)
	})
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	return s.image(ref, e), nil
}

// Module returns the module bytes of img after checking that they hash to
// img.ModuleDigest. A blob that does not is removed (so the next Pull
// fetches it again) and ErrDigestMismatch is returned; an image without a
// module gives ErrNotWasm, a missing blob ErrNotPresent.
func (s *Store) Module(img Image) ([]byte, error) {
	if !img.Wasm {
		return nil, fmt.Errorf("module of %s: %w", img.Ref, ErrNotWasm)
	}
	h, err := v1.NewHash(img.ModuleDigest)
	if err != nil || h.Algorithm != "sha256" {
		return nil, fmt.Errorf("module of %s: bad module digest %q", img.Ref, img.ModuleDigest)
	}
	b, err := s.readBlob(h)
	if err != nil {
		return nil, fmt.Errorf("module of %s: %w", img.Ref, err)
	}
	return b, nil
}

// Import puts a local module into the store under ref (a tag reference, or
// a digest reference naming exactly these bytes), as `skiff image import
// FILE NAME:TAG` does on a node. The image gets the digest of a real OCI
// manifest built from the module alone (one application/vnd.wasm.content.
// layer.v1+wasm layer, config os wasip1, architecture wasm, no timestamps),
// so the same bytes give the same image ID on every node and in a registry
// the image is pushed to.
//
// An imported reference is found by IfNotPresent and Never; Always (the
// default for :latest or untagged references) still asks the registry the
// reference names, as the kubelet does with side-loaded images.
func (s *Store) Import(ctx context.Context, wasm []byte, ref string) (Image, error) {
	if err := ctx.Err(); err != nil {
		return Image{}, err
	}
	r, err := name.ParseReference(ref, s.nameOpts...)
	if err != nil {
		return Image{}, fmt.Errorf("import %s: %w: %w", ref, ErrInvalidReference, err)
	}
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return Image{}, fmt.Errorf("import %s: %w: no Wasm magic number", ref, ErrNotWasm)
	}
	img, err := WasmImage(wasm)
	if err != nil {
		return Image{}, fmt.Errorf("import %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return Image{}, fmt.Errorf("import %s: %w", ref, err)
	}
	if d, ok := r.(name.Digest); ok && d.DigestStr() != digest.String() {
		return Image{}, fmt.Errorf("import %s: %w: the module's image digest is %s", ref, ErrDigestMismatch, digest)
	}
	mh, size, err := s.putBlob(wasm)
	if err != nil {
		return Image{}, fmt.Errorf("import %s: %w", ref, err)
	}
	e := entry{
		Repo:         r.Context().Name(),
		Digest:       digest.String(),
		Wasm:         true,
		ModuleDigest: mh.String(),
		ModuleSize:   size,
		Imported:     true,
	}
	if err := s.record(r, e); err != nil {
		return Image{}, fmt.Errorf("import %s: %w", ref, err)
	}
	s.log.Info("image imported", "ref", ref, "digest", e.Digest, "module", e.ModuleDigest, "bytes", size)
	return s.image(ref, e), nil
}

// WasmImage is the OCI image of a bare module, as Import gives it and as
// `skiff image import` pushes it: one Wasm layer, a wasip1/wasm config and
// no timestamps, so the same bytes always make the same image digest.
func WasmImage(wasm []byte) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(wasm, MediaTypeWasmLayer))
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "wasip1", "wasm"
	return mutate.ConfigFile(img, cf)
}

// image turns an index entry into the Image handed to callers.
func (s *Store) image(ref string, e entry) Image {
	img := Image{Ref: ref, Digest: e.Digest, Wasm: e.Wasm, Config: e.Config}
	img.Config.Entrypoint = cloneStrings(e.Config.Entrypoint)
	img.Config.Cmd = cloneStrings(e.Config.Cmd)
	img.Config.Env = cloneStrings(e.Config.Env)
	if e.Wasm {
		img.ModuleDigest = e.ModuleDigest
		if h, err := v1.NewHash(e.ModuleDigest); err == nil {
			img.Module = s.blobPath(h)
		}
	}
	return img
}

func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}

// stamp identifies a blob file's state when it was last verified, so
// IfNotPresent pulls need not re-hash an unchanged file each time.
type stamp struct {
	size    int64
	modTime time.Time
}
