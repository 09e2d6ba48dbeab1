package imageregistry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream buckets of the registry. Blobs and manifests are objects named
// by their digest, so the same content is stored once whatever repository
// pushed it; refs is a key-value bucket of the small entries that give
// names to content (tags, and which manifests belong to which repository).
const (
	bucketBlobs     = "skiff-registry-blobs"
	bucketManifests = "skiff-registry-manifests"
	bucketRefs      = "skiff-registry-refs"

	// objectChunkSize is the size of the JetStream messages an object is cut
	// into. Every message is fsynced on its own (bus.Config.JetStreamDir), so
	// larger chunks mean fewer syncs; 256 KiB stays well under NATS' default
	// 1 MiB maximum payload.
	objectChunkSize = 256 << 10

	metaMediaType = "mediaType"
)

// store keeps the registry's content in JetStream. Every write returns
// only after JetStream acknowledged it, which on a file-backed server with
// SyncAlways means after it was fsynced (on a quorum of replicas when
// replicated).
type store struct {
	blobs     jetstream.ObjectStore
	manifests jetstream.ObjectStore
	refs      jetstream.KeyValue
	// putLocks serialises writes of one digest: JetStream's object Put
	// replaces an object by writing new chunks and purging the old ones, so
	// two concurrent Puts of the same blob could pull chunks from under a
	// reader. With the lock, the second writer finds the object present and
	// writes nothing.
	putLocks keyedMutex
}

func openStore(ctx context.Context, nc *nats.Conn, replicas int) (*store, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	obj := func(bucket, desc string) (jetstream.ObjectStore, error) {
		// CreateOrUpdate: a later engine with more servers raises the
		// replica count of an existing bucket in place.
		o, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: bucket, Description: desc, Storage: jetstream.FileStorage, Replicas: replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("object store %s: %w", bucket, err)
		}
		return o, nil
	}
	s := &store{}
	if s.blobs, err = obj(bucketBlobs, "skiff registry blobs, by digest"); err != nil {
		return nil, err
	}
	if s.manifests, err = obj(bucketManifests, "skiff registry manifests, by digest"); err != nil {
		return nil, err
	}
	s.refs, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucketRefs, Description: "skiff registry tags and repository membership",
		History: 1, Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("key-value bucket %s: %w", bucketRefs, err)
	}
	return s, nil
}

// Key layout of the refs bucket. Repository names and tags may hold '.',
// which splits NATS subjects, so both are base64url-encoded (an alphabet
// KV keys accept) into one token each.
//
//	t.<repo>.<tag>     → manifest digest
//	m.<repo>.<hex>     → media type: the manifest belongs to the repository
func tagKey(repo, tag string) string { return "t." + enc(repo) + "." + enc(tag) }
func tagFilter(repo string) string   { return "t." + enc(repo) + ".*" }
func memberKey(repo, digest string) string {
	return "m." + enc(repo) + "." + strings.TrimPrefix(digest, "sha256:")
}
func memberFilter(repo string) string { return "m." + enc(repo) + ".*" }
func enc(s string) string             { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

var errNotFound = errors.New("not found")

// statBlob returns the size of a stored blob, or errNotFound.
func (s *store) statBlob(ctx context.Context, digest string) (int64, error) {
	info, err := s.blobs.GetInfo(ctx, digest)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return 0, errNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", digest, err)
	}
	return int64(info.Size), nil
}

// openBlob returns a reader of a stored blob and its size, or errNotFound.
// The reader fails at its end if the content does not hash to what was
// stored (JetStream's object store checks its own SHA-256).
func (s *store) openBlob(ctx context.Context, digest string) (io.ReadCloser, int64, error) {
	res, err := s.blobs.Get(ctx, digest)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, 0, errNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open blob %s: %w", digest, err)
	}
	info, err := res.Info()
	if err != nil {
		res.Close()
		return nil, 0, fmt.Errorf("open blob %s: %w", digest, err)
	}
	return res, int64(info.Size), nil
}

// putBlob stores r under digest; the caller has checked that r hashes to
// digest. A blob already present is not written again.
func (s *store) putBlob(ctx context.Context, digest string, r io.Reader) error {
	unlock := s.putLocks.lock(digest)
	defer unlock()
	if _, err := s.statBlob(ctx, digest); err == nil {
		return nil
	} else if !errors.Is(err, errNotFound) {
		return err
	}
	info, err := s.blobs.Put(ctx, jetstream.ObjectMeta{Name: digest,
		Opts: &jetstream.ObjectMetaOptions{ChunkSize: objectChunkSize}}, r)
	if err != nil {
		return fmt.Errorf("put blob %s: %w", digest, err)
	}
	// JetStream hashed what it stored: a second, independent check that the
	// bytes in the store are the bytes that were verified.
	if got, err := jetstream.DecodeObjectDigest(info.Digest); err != nil || "sha256:"+hex.EncodeToString(got) != digest {
		_ = s.blobs.Delete(ctx, digest)
		return fmt.Errorf("put blob %s: the store hashed it as %s", digest, info.Digest)
	}
	return nil
}

// manifest is a stored manifest.
type manifest struct {
	digest    string
	mediaType string
	body      []byte
}

// putManifest stores a manifest, records that it belongs to repo and, when
// tag is not empty, points the tag at it.
func (s *store) putManifest(ctx context.Context, repo, tag string, m manifest) error {
	if err := s.putManifestObject(ctx, m); err != nil {
		return err
	}
	if _, err := s.refs.Put(ctx, memberKey(repo, m.digest), []byte(m.mediaType)); err != nil {
		return fmt.Errorf("put manifest %s in %s: %w", m.digest, repo, err)
	}
	if tag != "" {
		if _, err := s.refs.Put(ctx, tagKey(repo, tag), []byte(m.digest)); err != nil {
			return fmt.Errorf("tag %s:%s: %w", repo, tag, err)
		}
	}
	return nil
}

func (s *store) putManifestObject(ctx context.Context, m manifest) error {
	unlock := s.putLocks.lock(m.digest)
	defer unlock()
	_, err := s.manifests.GetInfo(ctx, m.digest)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("stat manifest %s: %w", m.digest, err)
	}
	_, err = s.manifests.Put(ctx, jetstream.ObjectMeta{Name: m.digest,
		Metadata: map[string]string{metaMediaType: m.mediaType},
		Opts:     &jetstream.ObjectMetaOptions{ChunkSize: objectChunkSize}}, bytes.NewReader(m.body))
	if err != nil {
		return fmt.Errorf("put manifest %s: %w", m.digest, err)
	}
	return nil
}

// resolve turns a tag or digest of repo into a digest of a manifest that
// belongs to repo, or errNotFound.
func (s *store) resolve(ctx context.Context, repo, ref string) (string, error) {
	digest := ref
	if !isDigest(ref) {
		e, err := s.refs.Get(ctx, tagKey(repo, ref))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return "", errNotFound
		}
		if err != nil {
			return "", fmt.Errorf("tag %s:%s: %w", repo, ref, err)
		}
		digest = string(e.Value())
	}
	if _, err := s.refs.Get(ctx, memberKey(repo, digest)); errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", errNotFound
	} else if err != nil {
		return "", fmt.Errorf("manifest %s in %s: %w", digest, repo, err)
	}
	return digest, nil
}

// getManifest returns the manifest a tag or digest of repo names.
func (s *store) getManifest(ctx context.Context, repo, ref string, withBody bool) (manifest, error) {
	digest, err := s.resolve(ctx, repo, ref)
	if err != nil {
		return manifest{}, err
	}
	info, err := s.manifests.GetInfo(ctx, digest)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return manifest{}, errNotFound
	}
	if err != nil {
		return manifest{}, fmt.Errorf("manifest %s: %w", digest, err)
	}
	m := manifest{digest: digest, mediaType: info.Metadata[metaMediaType]}
	if !withBody {
		m.body = make([]byte, 0, info.Size) // cap carries the size for HEAD
		return m, nil
	}
	if m.body, err = s.manifests.GetBytes(ctx, digest); err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return manifest{}, errNotFound
		}
		return manifest{}, fmt.Errorf("manifest %s: %w", digest, err)
	}
	return m, nil
}

// manifestExists reports whether a manifest is stored, in any repository.
func (s *store) manifestExists(ctx context.Context, digest string) (bool, error) {
	_, err := s.manifests.GetInfo(ctx, digest)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return false, nil
	}
	return err == nil, err
}

// deleteManifest removes a tag, or a manifest from repo with every tag of
// repo that points at it. The content stays: other repositories may share
// it (there is no garbage collection yet).
func (s *store) deleteManifest(ctx context.Context, repo, ref string) error {
	if !isDigest(ref) {
		if _, err := s.refs.Get(ctx, tagKey(repo, ref)); errors.Is(err, jetstream.ErrKeyNotFound) {
			return errNotFound
		} else if err != nil {
			return err
		}
		return s.refs.Delete(ctx, tagKey(repo, ref))
	}
	if _, err := s.refs.Get(ctx, memberKey(repo, ref)); errors.Is(err, jetstream.ErrKeyNotFound) {
		return errNotFound
	} else if err != nil {
		return err
	}
	tags, err := s.tags(ctx, repo)
	if err != nil {
		return err
	}
	for _, t := range tags {
		e, err := s.refs.Get(ctx, tagKey(repo, t))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if string(e.Value()) == ref {
			if err := s.refs.Delete(ctx, tagKey(repo, t)); err != nil {
				return err
			}
		}
	}
	return s.refs.Delete(ctx, memberKey(repo, ref))
}

// tags lists repo's tags, sorted.
func (s *store) tags(ctx context.Context, repo string) ([]string, error) {
	keys, err := s.listKeys(ctx, tagFilter(repo))
	if err != nil {
		return nil, err
	}
	prefix := strings.TrimSuffix(tagFilter(repo), "*")
	tags := make([]string, 0, len(keys))
	for _, k := range keys {
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(k, prefix))
		if err != nil {
			continue // not written by this package
		}
		tags = append(tags, string(b))
	}
	slices.Sort(tags)
	return slices.Compact(tags), nil
}

// repoExists reports whether anything was pushed to repo (and not deleted).
func (s *store) repoExists(ctx context.Context, repo string) (bool, error) {
	keys, err := s.listKeys(ctx, memberFilter(repo))
	return len(keys) > 0, err
}

func (s *store) listKeys(ctx context.Context, filter string) ([]string, error) {
	// The lister's goroutine stops when ctx ends; cancelling on return
	// releases it even if the channel was not drained.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kl, err := s.refs.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", filter, err)
	}
	defer kl.Stop()
	var keys []string
	for {
		select {
		case k, ok := <-kl.Keys():
			if !ok {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("list %s: %w", filter, err)
				}
				return keys, nil
			}
			keys = append(keys, k)
		case <-ctx.Done():
			return nil, fmt.Errorf("list %s: %w", filter, ctx.Err())
		}
	}
}

// keyedMutex is a mutex per key, dropped when nobody holds or waits for it.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu sync.Mutex
	n  int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.n++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.n--; e.n == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// isDigest reports whether ref is a well-formed sha256 digest.
func isDigest(ref string) bool {
	h, ok := strings.CutPrefix(ref, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// storeError maps errNotFound to the OCI error for what was looked up.
func storeError(err error, notFound *apiError) error {
	if errors.Is(err, errNotFound) {
		return notFound
	}
	return err
}
