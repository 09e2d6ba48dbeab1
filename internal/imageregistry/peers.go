package imageregistry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ReplicaHeader marks a request one server's registry sends another's: a
// manifest copied by fan-out, or a GET of pull-through. The receiver
// neither fans such a manifest out again nor pulls through on such a miss,
// so copies never loop. It counts only beside the peers' token
// (Peers.Token): a request without it is served as any other.
const ReplicaHeader = "Skiff-Registry-Replica"

// Bounds of the work between servers' registries.
const (
	// maxFanOuts bounds the manifest fan-outs in flight; one more is
	// skipped (and logged): the peers then pull it through on first use.
	maxFanOuts = 8
	// fanOutTimeout bounds copying one manifest and its blobs to every
	// peer (a blob may be up to MaxBlobSize).
	fanOutTimeout = 10 * time.Minute
	// peerManifestTimeout bounds asking one peer for a manifest: a miss
	// on every peer costs a pod's image resolution at most this per peer.
	peerManifestTimeout = 5 * time.Second
	// peerBlobTimeout bounds fetching one blob from one peer.
	peerBlobTimeout = 5 * time.Minute
	// peerBackoff is how long pull-through skips a peer it could not
	// reach: a server that is down or cut off must not add a timeout to
	// every miss (most misses are images of other registries that a pod's
	// image resolution asks about).
	peerBackoff = 5 * time.Second
	// maxIndexDepth bounds how deep an image index's manifests are copied
	// or pulled (an index of indexes is legal, a deeper one is not useful).
	maxIndexDepth = 2
)

// Peers links a server's registry to the other servers' registries in a
// cluster where each server keeps its own store: a manifest pushed to this
// server is copied to every peer (fan-out), and a manifest or blob missing
// here is fetched from the peers on first request (pull-through), for a
// peer that was down during the fan-out.
type Peers struct {
	// URLs returns the base URLs of the other servers' registries
	// ("https://host:port", serving /v2/). It is called for every fan-out
	// and every miss, so the list may change while the registry runs.
	URLs func() []string
	// Client makes the requests (its transport trusts the cluster CA).
	// Its Timeout should be zero: requests are bounded by contexts.
	Client *http.Client
	// Token is the bearer token every peer accepts (the cluster token).
	Token string
}

// replica reports whether req comes from a peer's registry.
func (r *Registry) replica(req *http.Request) bool {
	return r.cfg.Peers != nil && req.Header.Get(ReplicaHeader) != "" && authorized(req, r.cfg.Peers.Token)
}

func (r *Registry) peerURLs() []string {
	if r.cfg.Peers == nil || r.cfg.Peers.URLs == nil {
		return nil
	}
	return r.cfg.Peers.URLs()
}

// peerRequest sends one request to a peer, marked as a replica's.
func (r *Registry) peerRequest(ctx context.Context, method, url string, body io.Reader, size int64, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.ContentLength = size
	}
	req.Header.Set("Authorization", "Bearer "+r.cfg.Peers.Token)
	req.Header.Set(ReplicaHeader, "1")
	resp, err := r.cfg.Peers.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnreachable, err)
	}
	return resp, nil
}

// errUnreachable: a peer did not answer at all (refused, timed out).
var errUnreachable = errors.New("peer unreachable")

// downPeers are the peers pull-through skips for now (peerBackoff).
type downPeers struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func (d *downPeers) skip(peer string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Now().Before(d.until[peer])
}

// note records how asking peer went: unreachable (while the caller's own
// context was live) starts a backoff, anything else ends it.
func (d *downPeers) note(ctx context.Context, peer string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case errors.Is(err, errUnreachable) && ctx.Err() == nil:
		if d.until == nil {
			d.until = map[string]time.Time{}
		}
		d.until[peer] = time.Now().Add(peerBackoff)
	case err == nil || errors.Is(err, errNotOnPeers):
		delete(d.until, peer)
	}
}

// peerStatusError describes an unexpected answer, with the start of its
// body (the OCI error).
func peerStatusError(resp *http.Response, what string) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("%s: %s: %s", what, resp.Status, strings.TrimSpace(string(b)))
}

// fanOut copies a manifest just stored through the API to every peer, in
// the background.
func (r *Registry) fanOut(repo, tag string, m manifest) {
	peers := r.peerURLs()
	if len(peers) == 0 {
		return
	}
	select {
	case r.fanOuts <- struct{}{}:
	default:
		r.log.Warn("registry: fan-out skipped, too many in flight; peers will pull it through on use",
			"repo", repo, "tag", tag, "digest", m.digest)
		return
	}
	ref := tag
	if ref == "" {
		ref = m.digest
	}
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		defer func() { <-r.fanOuts }()
		ctx, cancel := context.WithTimeout(r.bgCtx, fanOutTimeout)
		defer cancel()
		var wg sync.WaitGroup
		for _, p := range peers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				if err := r.copyManifest(ctx, p, repo, ref, m, 0); err != nil {
					r.log.Warn("registry: fan-out to a peer failed; it pulls through on use",
						"peer", p, "repo", repo, "ref", ref, "err", err)
					return
				}
				r.log.Info("registry: manifest copied to a peer", "peer", p, "repo", repo, "ref", ref,
					"digest", m.digest, "took", time.Since(start))
			}()
		}
		wg.Wait()
	}()
}

// copyManifest copies m (and what it references) to the peer at base
// under repo:ref.
func (r *Registry) copyManifest(ctx context.Context, base, repo, ref string, m manifest, depth int) error {
	var doc manifestDoc
	if err := json.Unmarshal(m.body, &doc); err != nil {
		return fmt.Errorf("manifest %s: %w", m.digest, err)
	}
	for _, d := range blobsOf(doc) {
		if err := r.copyBlob(ctx, base, repo, d); err != nil {
			return err
		}
	}
	if len(doc.Manifests) > 0 && depth >= maxIndexDepth {
		return fmt.Errorf("manifest %s: image indexes nested deeper than %d", m.digest, maxIndexDepth)
	}
	for _, d := range doc.Manifests {
		child, err := r.store.getManifest(ctx, repo, d.Digest, true)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
		if err := r.copyManifest(ctx, base, repo, d.Digest, child, depth+1); err != nil {
			return err
		}
	}
	resp, err := r.peerRequest(ctx, http.MethodPut, base+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(m.body),
		int64(len(m.body)), http.Header{"Content-Type": {m.mediaType}})
	if err != nil {
		return fmt.Errorf("put manifest %s: %w", ref, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return peerStatusError(resp, "put manifest "+ref)
	}
	return nil
}

// copyBlob uploads a stored blob to the peer at base unless it has it.
func (r *Registry) copyBlob(ctx context.Context, base, repo, digest string) error {
	resp, err := r.peerRequest(ctx, http.MethodHead, base+"/v2/"+repo+"/blobs/"+digest, nil, 0, nil)
	if err != nil {
		return fmt.Errorf("stat blob %s: %w", digest, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	rc, size, err := r.store.openBlob(ctx, digest)
	if err != nil {
		return fmt.Errorf("read blob %s: %w", digest, err)
	}
	defer rc.Close()
	// A monolithic upload: one request per blob.
	resp, err = r.peerRequest(ctx, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/?digest="+digest, rc, size,
		http.Header{"Content-Type": {"application/octet-stream"}})
	if err != nil {
		return fmt.Errorf("upload blob %s: %w", digest, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return peerStatusError(resp, "upload blob "+digest)
	}
	return nil
}

// blobsOf lists the blobs a manifest references and the registry keeps
// (foreign layers, which carry urls, are fetched from elsewhere).
func blobsOf(doc manifestDoc) []string {
	var out []string
	if doc.Config != nil && len(doc.Config.URLs) == 0 && isDigest(doc.Config.Digest) {
		out = append(out, doc.Config.Digest)
	}
	for _, d := range doc.Layers {
		if len(d.URLs) == 0 && isDigest(d.Digest) {
			out = append(out, d.Digest)
		}
	}
	return out
}

// errNotOnPeers: no peer has what was asked for (or none answered).
var errNotOnPeers = errors.New("not on any peer")

// pullManifest fetches repo:ref from the first peer that has it, with
// every blob and manifest it references, and stores it here. It returns
// errNotOnPeers when no peer has it.
func (r *Registry) pullManifest(ctx context.Context, repo, ref string, depth int) error {
	peers := r.peerURLs()
	if len(peers) == 0 {
		return errNotOnPeers
	}
	unlock := r.pulls.lock("m\x00" + repo + "\x00" + ref)
	defer unlock()
	if _, err := r.store.getManifest(ctx, repo, ref, false); err == nil {
		return nil // pulled by a request that held the lock before us
	}
	var errs []error
	for _, p := range peers {
		if r.down.skip(p) {
			continue
		}
		m, err := r.fetchManifest(ctx, p, repo, ref)
		r.down.note(ctx, p, err)
		if errors.Is(err, errNotOnPeers) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var doc manifestDoc
		if err := json.Unmarshal(m.body, &doc); err != nil {
			errs = append(errs, fmt.Errorf("%s: manifest %s: %w", p, m.digest, err))
			continue
		}
		if err := r.pullReferences(ctx, repo, m.digest, doc, depth); err != nil {
			return err
		}
		tag := ""
		if !isDigest(ref) {
			tag = ref
		}
		if err := r.store.putManifest(ctx, repo, tag, m); err != nil {
			return err
		}
		r.log.Info("registry: manifest pulled through from a peer", "peer", p, "repo", repo, "ref", ref, "digest", m.digest)
		return nil
	}
	if len(errs) > 0 {
		// Logged, not returned: a peer that is down must not turn a miss
		// into a server error when another peer answered "unknown".
		r.log.Warn("registry: pull-through asked peers that failed", "repo", repo, "ref", ref, "err", errors.Join(errs...))
	}
	return errNotOnPeers
}

// pullReferences makes sure what a pulled manifest references is here.
func (r *Registry) pullReferences(ctx context.Context, repo, digest string, doc manifestDoc, depth int) error {
	for _, d := range blobsOf(doc) {
		if _, err := r.store.statBlob(ctx, d); err == nil {
			continue
		}
		if err := r.pullBlob(ctx, repo, d); err != nil {
			return fmt.Errorf("manifest %s: blob %s: %w", digest, d, err)
		}
	}
	if len(doc.Manifests) > 0 && depth >= maxIndexDepth {
		return fmt.Errorf("manifest %s: image indexes nested deeper than %d", digest, maxIndexDepth)
	}
	for _, d := range doc.Manifests {
		if !isDigest(d.Digest) {
			return fmt.Errorf("manifest %s: descriptor digest %q is not a sha256 digest", digest, d.Digest)
		}
		if _, err := r.store.getManifest(ctx, repo, d.Digest, false); err == nil {
			continue
		}
		if err := r.pullManifest(ctx, repo, d.Digest, depth+1); err != nil {
			return fmt.Errorf("manifest %s: %w", digest, err)
		}
	}
	return nil
}

// fetchManifest GETs repo:ref from one peer and checks its digest.
func (r *Registry) fetchManifest(ctx context.Context, base, repo, ref string) (manifest, error) {
	ctx, cancel := context.WithTimeout(ctx, peerManifestTimeout)
	defer cancel()
	resp, err := r.peerRequest(ctx, http.MethodGet, base+"/v2/"+repo+"/manifests/"+ref, nil, 0,
		http.Header{"Accept": {manifestAccept}})
	if err != nil {
		return manifest{}, fmt.Errorf("%s: get manifest %s:%s: %w", base, repo, ref, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return manifest{}, errNotOnPeers
	default:
		return manifest{}, fmt.Errorf("%s: %w", base, peerStatusError(resp, "get manifest "+repo+":"+ref))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
	if err != nil {
		return manifest{}, fmt.Errorf("%s: get manifest %s:%s: %w", base, repo, ref, err)
	}
	if len(body) > maxManifestSize {
		return manifest{}, fmt.Errorf("%s: manifest %s:%s is over %d bytes", base, repo, ref, maxManifestSize)
	}
	sum := sha256.Sum256(body)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if isDigest(ref) && ref != digest {
		return manifest{}, fmt.Errorf("%s: manifest %s hashes to %s", base, ref, digest)
	}
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != digest {
		return manifest{}, fmt.Errorf("%s: manifest %s:%s hashes to %s, not %s as sent", base, repo, ref, digest, h)
	}
	mediaType := resp.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(mediaType); err == nil {
		mediaType = mt
	}
	if mediaType == "" {
		return manifest{}, fmt.Errorf("%s: manifest %s:%s has no Content-Type", base, repo, ref)
	}
	return manifest{digest: digest, mediaType: mediaType, body: body}, nil
}

// pullBlob fetches a blob from the first peer that has it, checks its
// digest and stores it here. It returns errNotOnPeers when no peer has it.
func (r *Registry) pullBlob(ctx context.Context, repo, digest string) error {
	peers := r.peerURLs()
	if len(peers) == 0 {
		return errNotOnPeers
	}
	unlock := r.pulls.lock("b\x00" + digest)
	defer unlock()
	if _, err := r.store.statBlob(ctx, digest); err == nil {
		return nil
	}
	var errs []error
	for _, p := range peers {
		if r.down.skip(p) {
			continue
		}
		err := r.fetchBlob(ctx, p, repo, digest)
		r.down.note(ctx, p, err)
		if err == nil {
			r.log.Info("registry: blob pulled through from a peer", "peer", p, "repo", repo, "digest", digest)
			return nil
		}
		if !errors.Is(err, errNotOnPeers) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		r.log.Warn("registry: pull-through asked peers that failed", "repo", repo, "digest", digest, "err", errors.Join(errs...))
	}
	return errNotOnPeers
}

// fetchBlob GETs a blob from one peer into an upload (bounded as a push
// is: MaxUploads, MaxBlobSize), checks its digest and stores it.
func (r *Registry) fetchBlob(ctx context.Context, base, repo, digest string) error {
	ctx, cancel := context.WithTimeout(ctx, peerBlobTimeout)
	defer cancel()
	resp, err := r.peerRequest(ctx, http.MethodGet, base+"/v2/"+repo+"/blobs/"+digest, nil, 0, nil)
	if err != nil {
		return fmt.Errorf("%s: get blob %s: %w", base, digest, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return errNotOnPeers
	default:
		return fmt.Errorf("%s: %w", base, peerStatusError(resp, "get blob "+digest))
	}
	if resp.ContentLength > r.cfg.MaxBlobSize {
		return fmt.Errorf("%s: blob %s has %s bytes, over the %d-byte limit", base, digest,
			strconv.FormatInt(resp.ContentLength, 10), r.cfg.MaxBlobSize)
	}
	u, err := r.uploads.start(repo)
	if err != nil {
		return err
	}
	defer r.uploads.done(u)
	if err := r.uploads.appendBody(u, resp.Body, r.cfg.MaxBlobSize); err != nil {
		return fmt.Errorf("%s: get blob %s: %w", base, digest, err)
	}
	defer r.uploads.remove(u)
	if got := u.digest(); got != digest {
		return fmt.Errorf("%s: blob %s hashes to %s", base, digest, got)
	}
	if _, err := u.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return r.store.putBlob(ctx, digest, u.f)
}
