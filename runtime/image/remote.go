package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// mediaTypeEmptyJSON is the OCI 1.1 "empty" config of artifacts: "{}".
const mediaTypeEmptyJSON = "application/vnd.oci.empty.v1+json"

// isWasmLayer reports whether a layer media type holds a Wasm module.
func isWasmLayer(mt types.MediaType) bool {
	switch mt {
	case MediaTypeWasm, MediaTypeWasmLayer, MediaTypeWasmToOCI:
		return true
	}
	return false
}

// isWasmPlatform reports whether an image index entry is the Wasm one.
// Docker and the CNCF Wasm OCI layout write wasi/wasm; Go's own port name
// wasip1 is accepted too.
func isWasmPlatform(p *v1.Platform) bool {
	return p != nil && p.Architecture == "wasm" && (p.OS == "wasip1" || p.OS == "wasi")
}

// pullRemote resolves ref in its registry and makes its module present.
// With several candidate credentials each is tried in turn, as the kubelet
// does, moving on only when the registry refused or did not find the image
// (private registries often answer 404 to the wrong account).
func (s *Store) pullRemote(ctx context.Context, ref name.Reference, kc authn.Keychain) (entry, error) {
	attempts := authOptions(ref.Context(), kc)
	var errs []error
	for i, opt := range attempts {
		e, err := s.pullWith(ctx, ref, opt)
		if err == nil {
			return e, nil
		}
		if len(attempts) > 1 {
			err = fmt.Errorf("credential %d of %d: %w", i+1, len(attempts), err)
		}
		errs = append(errs, err)
		if ctx.Err() != nil || !(errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrNotFound)) {
			break
		}
	}
	return entry{}, errors.Join(errs...)
}

// authOptions lists the ways to authenticate for repo, in the order to try.
func authOptions(repo name.Repository, kc authn.Keychain) []remote.Option {
	switch k := kc.(type) {
	case nil:
		return []remote.Option{remote.WithAuth(authn.Anonymous)}
	case *secretKeychain:
		creds := k.lookup(repo)
		if len(creds) == 0 {
			return []remote.Option{remote.WithAuth(authn.Anonymous)}
		}
		opts := make([]remote.Option, len(creds))
		for i, c := range creds {
			opts[i] = remote.WithAuth(authn.FromConfig(c))
		}
		return opts
	default:
		return []remote.Option{remote.WithAuthFromKeychain(kc)}
	}
}

// pullWith does one resolve-and-fetch with one way of authenticating.
func (s *Store) pullWith(ctx context.Context, ref name.Reference, auth remote.Option) (entry, error) {
	start := time.Now()
	// One Puller per attempt: it pings the registry and negotiates auth
	// once for all the requests below.
	p, err := remote.NewPuller(remote.WithTransport(s.transport), auth, remote.WithUserAgent(defaultUserAgent))
	if err != nil {
		return entry{}, err
	}

	if local, ok := s.lookup(ref.Name()); ok {
		// Always with a local copy: a HEAD tells whether the reference
		// still resolves to it, without transferring the manifest.
		desc, err := p.Head(ctx, ref)
		if err == nil && desc.Digest.String() == local.Digest && s.blobPresent(local) {
			s.log.Debug("image up to date", "ref", ref.String(), "digest", local.Digest)
			return local, nil
		}
		// A failed HEAD has no body to explain itself; the GET below
		// reports the failure properly.
	}

	d, err := p.Get(ctx, ref)
	if err != nil {
		return entry{}, classify(err)
	}
	e := entry{Repo: ref.Context().Name(), Digest: d.Digest.String(), MediaType: string(d.MediaType)}

	img, err := s.selectImage(ref, d)
	if err != nil {
		return entry{}, err
	}
	var layer v1.Descriptor
	if img != nil {
		m, err := img.Manifest()
		if err != nil {
			return entry{}, classify(err)
		}
		n := 0
		for _, l := range m.Layers {
			if isWasmLayer(l.MediaType) {
				layer, n = l, n+1
			}
		}
		switch {
		case n > 1:
			// A multi-component application (Spin and the like), not one
			// module per container; guessing would run the wrong code.
			return entry{}, fmt.Errorf("manifest %s has %d Wasm layers; a container runs exactly one module", e.Digest, n)
		case n == 1:
			e.Wasm = true
			e.ModuleDigest = layer.Digest.String()
			e.ModuleSize = layer.Size
			if e.Config, err = s.readConfig(img, m); err != nil {
				return entry{}, err
			}
		}
	}

	fetched := false
	if e.Wasm && !s.blobOK(layer.Digest, layer.Size) {
		if err := s.fetchBlob(ctx, p, ref.Context().Digest(layer.Digest.String()), layer); err != nil {
			return entry{}, err
		}
		fetched = true
	}
	if err := s.record(ref, e); err != nil {
		return entry{}, err
	}
	s.log.Info("image pulled", "ref", ref.String(), "digest", e.Digest, "wasm", e.Wasm,
		"module", e.ModuleDigest, "bytes", e.ModuleSize, "downloaded", fetched, "took", time.Since(start))
	return e, nil
}

// selectImage picks the image to look into: the manifest itself, or the
// wasi/wasm entry of an image index. nil (without error) means an index
// with no Wasm entry: an ordinary multi-platform image for an OCI runtime.
func (s *Store) selectImage(ref name.Reference, d *remote.Descriptor) (v1.Image, error) {
	switch {
	case d.MediaType.IsSchema1():
		return nil, fmt.Errorf("manifest %s is Docker schema 1, which is not supported", d.Digest)
	case d.MediaType.IsIndex():
		idx, err := d.ImageIndex()
		if err != nil {
			return nil, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, classify(err)
		}
		var platforms []string
		for _, m := range im.Manifests {
			if isWasmPlatform(m.Platform) {
				img, err := idx.Image(m.Digest)
				if err != nil {
					return nil, classify(err)
				}
				return img, nil
			}
			if m.Platform != nil {
				platforms = append(platforms, m.Platform.String())
			}
		}
		s.log.Info("image index has no wasi/wasm entry; not a Wasm image", "ref", ref.String(),
			"digest", d.Digest.String(), "platforms", platforms)
		return nil, nil
	default:
		// Includes unknown manifest media types: some registries serve
		// OCI artifacts with odd Content-Types, and the layers decide.
		img, err := d.Image()
		if err != nil {
			return nil, classify(err)
		}
		return img, nil
	}
}

// readConfig extracts entrypoint, cmd, env and workingDir from the image
// config. Wasm artifacts often carry configs that are not OCI image configs
// ({}, or the CNCF Wasm config); those give an empty ImageConfig, not an
// error, since the module runs fine without one.
func (s *Store) readConfig(img v1.Image, m *v1.Manifest) (ImageConfig, error) {
	if m.Config.Size == 0 || m.Config.Size > maxConfigSize || m.Config.MediaType == mediaTypeEmptyJSON {
		return ImageConfig{}, nil
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return ImageConfig{}, classify(err)
	}
	var cf struct {
		Config ImageConfig `json:"config"`
	}
	if err := json.Unmarshal(raw, &cf); err != nil {
		s.log.Debug("image config not parsable; using none", "mediaType", string(m.Config.MediaType), "err", err)
		return ImageConfig{}, nil
	}
	return cf.Config, nil
}

// fetchBlob downloads the module blob once, however many pulls want it at
// the same moment (different references can share a module).
func (s *Store) fetchBlob(ctx context.Context, p *remote.Puller, ref name.Digest, desc v1.Descriptor) error {
	_, err := s.blobs.do(ctx, desc.Digest.String(), func(ctx context.Context) (struct{}, error) {
		if s.blobOK(desc.Digest, desc.Size) {
			return struct{}{}, nil // another flight stored it meanwhile
		}
		if desc.Size > maxModuleSize {
			return struct{}{}, fmt.Errorf("blob %s: %d bytes is over the %d-byte limit", desc.Digest, desc.Size, maxModuleSize)
		}
		l, err := p.Layer(ctx, ref)
		if err != nil {
			return struct{}{}, classify(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			return struct{}{}, classify(err)
		}
		defer rc.Close()
		return struct{}{}, classify(s.writeBlob(rc, desc.Digest, desc.Size))
	})
	return err
}

// classify maps registry errors onto this package's sentinels, keeping the
// original reachable: 401/403 are ErrUnauthorized, 404 (manifest, blob or
// repository unknown) ErrNotFound.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return err
	}
	switch terr.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	case http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	for _, d := range terr.Errors {
		switch d.Code {
		case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
			return fmt.Errorf("%w: %w", ErrUnauthorized, err)
		case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		}
	}
	return err
}
