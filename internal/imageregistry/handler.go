package imageregistry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

var (
	// routeRe splits an API path into the repository name and the endpoint.
	// The name may contain slashes; the endpoint alternatives are anchored
	// at the end, so "a/blobs/b/manifests/x" is repository "a/blobs/b".
	routeRe = regexp.MustCompile(`^/v2/(.+)/(blobs/uploads/([^/]*)|blobs/([^/]+)|manifests/([^/]+)|tags/list|referrers/([^/]+))$`)
	// nameRe is the distribution spec's repository name grammar.
	nameRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	// tagRe is the distribution spec's tag grammar.
	tagRe = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

const maxNameLength = 255

// errAbort ends a response whose body has already started: there is no way
// to report an error any more, so the connection is cut and the client sees
// a truncated body (which its digest check catches).
var errAbort = errors.New("abort response")

// Handler serves the OCI distribution API (/v2/...) without any
// authentication: wrap it with Authenticate where it faces a network. Serve
// runs it on the bus, whose connections are already authenticated.
func (r *Registry) Handler() http.Handler { return http.HandlerFunc(r.serveHTTP) }

func (r *Registry) serveHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	start := time.Now()
	err := r.route(w, req)
	if err == nil {
		return
	}
	if errors.Is(err, errAbort) {
		panic(http.ErrAbortHandler)
	}
	var ae *apiError
	if !errors.As(err, &ae) {
		r.log.Error("registry: request failed", "method", req.Method, "path", req.URL.Path, "err", err, "took", time.Since(start))
	}
	writeError(w, err)
}

func (r *Registry) route(w http.ResponseWriter, req *http.Request) error {
	p := req.URL.Path
	if p == "/v2/" || p == "/v2" {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			return methodNotAllowed(w, "GET, HEAD")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		if req.Method == http.MethodGet {
			w.Write([]byte("{}"))
		}
		return nil
	}
	m := routeRe.FindStringSubmatch(p)
	if m == nil {
		return newError(http.StatusNotFound, codeUnsupported, "no such endpoint: %s", p)
	}
	repo := m[1]
	if len(repo) > maxNameLength || !nameRe.MatchString(repo) {
		return newError(http.StatusBadRequest, codeNameInvalid, "invalid repository name %q", repo)
	}
	switch endpoint := m[2]; {
	case endpoint == "blobs/uploads/":
		if req.Method != http.MethodPost {
			return methodNotAllowed(w, "POST")
		}
		return r.startUpload(w, req, repo)
	case m[3] != "":
		return r.serveUpload(w, req, repo, m[3])
	case m[4] != "":
		return r.serveBlob(w, req, repo, m[4])
	case m[5] != "":
		return r.serveManifest(w, req, repo, m[5])
	case endpoint == "tags/list":
		if req.Method != http.MethodGet {
			return methodNotAllowed(w, "GET")
		}
		return r.listTags(w, req, repo)
	default:
		// The referrers API is not served; the spec's answer for that is a
		// 404, after which clients fall back to the tag schema.
		return newError(http.StatusNotFound, codeUnsupported, "the referrers API is not supported")
	}
}

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return newError(http.StatusMethodNotAllowed, codeUnsupported, "method not allowed; allowed: %s", allow)
}

func checkDigest(d string) error {
	if !isDigest(d) {
		return newError(http.StatusBadRequest, codeDigestInvalid, "invalid digest %q: want sha256:<64 lowercase hex digits>", d)
	}
	return nil
}

// serveBlob answers GET and HEAD of a blob. Blobs are stored once for all
// repositories, so a blob pushed to one can be read through any: every
// client of this registry holds the same cluster credential anyway.
func (r *Registry) serveBlob(w http.ResponseWriter, req *http.Request, repo, digest string) error {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodDelete:
		// Blobs are shared between repositories and there is no reference
		// counting yet: deleting one could break another repository's image.
		return newError(http.StatusMethodNotAllowed, codeUnsupported, "blob deletion is not supported")
	default:
		return methodNotAllowed(w, "GET, HEAD")
	}
	if err := checkDigest(digest); err != nil {
		return err
	}
	unknown := newError(http.StatusNotFound, codeBlobUnknown, "blob %s is unknown", digest)
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", digest)
	if r.cfg.Peers != nil && !r.replica(req) {
		if _, err := r.store.statBlob(req.Context(), digest); errors.Is(err, errNotFound) {
			// Missed here: a peer may have it (a server that was down
			// during the push's fan-out). What no peer has stays a 404.
			if err := r.pullBlob(req.Context(), repo, digest); err != nil && !errors.Is(err, errNotOnPeers) {
				return err
			}
		}
	}
	if req.Method == http.MethodHead {
		size, err := r.store.statBlob(req.Context(), digest)
		if err != nil {
			return storeError(err, unknown)
		}
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	rc, size, err := r.store.openBlob(req.Context(), digest)
	if err != nil {
		return storeError(err, unknown)
	}
	defer rc.Close()
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if n, err := io.Copy(w, rc); err != nil {
		r.log.Warn("registry: blob read failed mid-response", "digest", digest, "sent", n, "size", size, "err", err)
		return errAbort
	}
	return nil
}

// startUpload answers POST .../blobs/uploads/: a monolithic upload when
// ?digest= is given, a cross-repository mount when ?mount= names a stored
// blob, and otherwise a new upload session for PATCH and PUT.
func (r *Registry) startUpload(w http.ResponseWriter, req *http.Request, repo string) error {
	q := req.URL.Query()
	if mount := q.Get("mount"); mount != "" && isDigest(mount) {
		if _, err := r.store.statBlob(req.Context(), mount); err == nil {
			return blobCreated(w, repo, mount)
		} else if !errors.Is(err, errNotFound) {
			return err
		}
		// Not here: fall back to an upload, as the spec allows (202).
	}
	digest := q.Get("digest")
	if digest != "" {
		if err := checkDigest(digest); err != nil {
			return err
		}
	}
	u, err := r.uploads.start(repo)
	if err != nil {
		return err
	}
	defer r.uploads.done(u)
	if digest != "" {
		return r.finishUpload(w, req, u, digest)
	}
	return uploadAccepted(w, u, http.StatusAccepted)
}

// serveUpload answers the requests on one upload session.
func (r *Registry) serveUpload(w http.ResponseWriter, req *http.Request, repo, id string) error {
	switch req.Method {
	case http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete:
	default:
		return methodNotAllowed(w, "GET, PATCH, PUT, DELETE")
	}
	u, err := r.uploads.get(repo, id)
	if err != nil {
		return err
	}
	defer r.uploads.done(u)
	switch req.Method {
	case http.MethodGet:
		return uploadAccepted(w, u, http.StatusNoContent)
	case http.MethodDelete:
		r.uploads.remove(u)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNoContent)
		return nil
	case http.MethodPatch:
		if err := u.checkRange(req.Header.Get("Content-Range"), req.ContentLength); err != nil {
			return err
		}
		if err := r.uploads.appendBody(u, req.Body, r.cfg.MaxBlobSize); err != nil {
			return err
		}
		return uploadAccepted(w, u, http.StatusAccepted)
	default: // PUT
		digest := req.URL.Query().Get("digest")
		if err := checkDigest(digest); err != nil {
			r.uploads.remove(u)
			return err
		}
		return r.finishUpload(w, req, u, digest)
	}
}

// finishUpload appends the request body, checks the digest and moves the
// blob into the store. The upload is removed whatever happens.
func (r *Registry) finishUpload(w http.ResponseWriter, req *http.Request, u *upload, digest string) error {
	if err := r.uploads.appendBody(u, req.Body, r.cfg.MaxBlobSize); err != nil {
		return err
	}
	defer r.uploads.remove(u)
	if got := u.digest(); got != digest {
		return newError(http.StatusBadRequest, codeDigestInvalid, "the upload's digest is %s, not %s", got, digest)
	}
	if _, err := u.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	start := time.Now()
	if err := r.store.putBlob(req.Context(), digest, u.f); err != nil {
		return err
	}
	r.log.Info("registry: blob stored", "repo", u.repo, "digest", digest, "bytes", u.size, "took", time.Since(start))
	return blobCreated(w, u.repo, digest)
}

func blobCreated(w http.ResponseWriter, repo, digest string) error {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/"+digest)
	h.Set("Docker-Content-Digest", digest)
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func uploadAccepted(w http.ResponseWriter, u *upload, status int) error {
	h := w.Header()
	h.Set("Location", "/v2/"+u.repo+"/blobs/uploads/"+u.id)
	h.Set("Range", u.rangeHeader())
	h.Set("Docker-Upload-UUID", u.id)
	h.Set("Content-Length", "0")
	w.WriteHeader(status)
	return nil
}

func (r *Registry) serveManifest(w http.ResponseWriter, req *http.Request, repo, ref string) error {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete:
	default:
		return methodNotAllowed(w, "GET, HEAD, PUT, DELETE")
	}
	if !isDigest(ref) && !tagRe.MatchString(ref) {
		if _, _, isDig := cutDigest(ref); isDig {
			return newError(http.StatusBadRequest, codeDigestInvalid, "invalid digest %q: want sha256:<64 lowercase hex digits>", ref)
		}
		return newError(http.StatusBadRequest, codeManifestInvalid, "%q is neither a tag nor a digest", ref)
	}
	ctx := req.Context()
	unknown := newError(http.StatusNotFound, codeManifestUnknown, "manifest %s:%s is unknown", repo, ref)
	switch req.Method {
	case http.MethodPut:
		return r.putManifest(w, req, repo, ref)
	case http.MethodDelete:
		if err := r.store.deleteManifest(ctx, repo, ref); err != nil {
			return storeError(err, unknown)
		}
		r.log.Info("registry: manifest deleted", "repo", repo, "ref", ref)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	m, err := r.store.getManifest(ctx, repo, ref, req.Method == http.MethodGet)
	if errors.Is(err, errNotFound) && !r.replica(req) {
		// A local hit is served as is (fan-out keeps tags current); a miss
		// asks the peers.
		if perr := r.pullManifest(ctx, repo, ref, 0); perr == nil {
			m, err = r.store.getManifest(ctx, repo, ref, req.Method == http.MethodGet)
		} else if !errors.Is(perr, errNotOnPeers) {
			return perr
		}
	}
	if err != nil {
		return storeError(err, unknown)
	}
	h := w.Header()
	h.Set("Content-Type", m.mediaType)
	h.Set("Docker-Content-Digest", m.digest)
	if req.Method == http.MethodHead {
		h.Set("Content-Length", strconv.Itoa(cap(m.body)))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	h.Set("Content-Length", strconv.Itoa(len(m.body)))
	w.WriteHeader(http.StatusOK)
	w.Write(m.body)
	return nil
}

// cutDigest splits "algorithm:hex"; ok tells whether ref looks like a digest
// at all (tags cannot contain ':').
func cutDigest(ref string) (alg, hex string, ok bool) {
	for i := 0; i < len(ref); i++ {
		if ref[i] == ':' {
			return ref[:i], ref[i+1:], true
		}
	}
	return "", "", false
}

// descriptor is the part of an OCI descriptor the registry checks.
type descriptor struct {
	MediaType string   `json:"mediaType"`
	Digest    string   `json:"digest"`
	Size      int64    `json:"size"`
	URLs      []string `json:"urls"`
}

// manifestDoc is the part of an image manifest or image index the registry
// checks: what it references must already be stored.
type manifestDoc struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        *descriptor  `json:"config"`
	Layers        []descriptor `json:"layers"`
	Manifests     []descriptor `json:"manifests"`
}

func (r *Registry) putManifest(w http.ResponseWriter, req *http.Request, repo, ref string) error {
	ctx := req.Context()
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxManifestSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return newError(http.StatusRequestEntityTooLarge, codeSizeInvalid, "manifest over %d bytes", maxManifestSize)
		}
		return newError(http.StatusBadRequest, codeManifestInvalid, "reading the manifest failed: %v", err)
	}
	sum := sha256.Sum256(body)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	tag := ""
	if isDigest(ref) {
		if ref != digest {
			return newError(http.StatusBadRequest, codeDigestInvalid, "the manifest's digest is %s, not %s", digest, ref)
		}
	} else {
		tag = ref
	}
	var doc manifestDoc
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&doc); err != nil {
		return newError(http.StatusBadRequest, codeManifestInvalid, "manifest is not JSON: %v", err)
	}
	mediaType := req.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(mediaType); err == nil {
		mediaType = mt
	}
	switch {
	case mediaType == "" && doc.MediaType == "":
		return newError(http.StatusBadRequest, codeManifestInvalid, "no Content-Type and no mediaType in the manifest")
	case mediaType == "":
		mediaType = doc.MediaType
	case doc.MediaType != "" && doc.MediaType != mediaType:
		return newError(http.StatusBadRequest, codeManifestInvalid,
			"Content-Type %q differs from the manifest's mediaType %q", mediaType, doc.MediaType)
	}
	if err := r.checkReferences(req, doc); err != nil {
		return err
	}
	start := time.Now()
	if err := r.store.putManifest(ctx, repo, tag, manifest{digest: digest, mediaType: mediaType, body: body}); err != nil {
		return err
	}
	r.log.Info("registry: manifest stored", "repo", repo, "tag", tag, "digest", digest, "mediaType", mediaType, "took", time.Since(start))
	if !r.replica(req) {
		r.fanOut(repo, tag, manifest{digest: digest, mediaType: mediaType, body: body})
	}
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/manifests/"+digest)
	h.Set("Docker-Content-Digest", digest)
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// checkReferences makes sure a manifest points only at stored content: the
// config and layers of an image manifest (foreign layers, which carry urls,
// excepted), the manifests of an index.
func (r *Registry) checkReferences(req *http.Request, doc manifestDoc) error {
	ctx := req.Context()
	blobs := doc.Layers
	if doc.Config != nil {
		blobs = append([]descriptor{*doc.Config}, blobs...)
	}
	for _, d := range blobs {
		if len(d.URLs) > 0 {
			continue
		}
		if !isDigest(d.Digest) {
			return newError(http.StatusBadRequest, codeManifestInvalid, "descriptor digest %q is not a sha256 digest", d.Digest)
		}
		if _, err := r.store.statBlob(ctx, d.Digest); err != nil {
			return storeError(err, newError(http.StatusBadRequest, codeManifestBlobUnknown, "blob %s is unknown", d.Digest))
		}
	}
	for _, d := range doc.Manifests {
		if !isDigest(d.Digest) {
			return newError(http.StatusBadRequest, codeManifestInvalid, "descriptor digest %q is not a sha256 digest", d.Digest)
		}
		ok, err := r.store.manifestExists(ctx, d.Digest)
		if err != nil {
			return err
		}
		if !ok {
			return newError(http.StatusBadRequest, codeManifestBlobUnknown, "manifest %s is unknown", d.Digest)
		}
	}
	return nil
}

// listTags answers GET .../tags/list, with the spec's n and last pagination.
func (r *Registry) listTags(w http.ResponseWriter, req *http.Request, repo string) error {
	ctx := req.Context()
	tags, err := r.store.tags(ctx, repo)
	if err != nil {
		return err
	}
	if len(tags) == 0 {
		ok, err := r.store.repoExists(ctx, repo)
		if err != nil {
			return err
		}
		if !ok {
			return newError(http.StatusNotFound, codeNameUnknown, "repository %s is unknown", repo)
		}
	}
	q := req.URL.Query()
	if last := q.Get("last"); last != "" {
		i := 0
		for i < len(tags) && tags[i] <= last {
			i++
		}
		tags = tags[i:]
	}
	if ns := q.Get("n"); ns != "" {
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 {
			return newError(http.StatusBadRequest, codeUnsupported, "n=%q is not a count", ns)
		}
		if n < len(tags) {
			tags = tags[:n]
			if n > 0 {
				w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?n=%d&last=%s>; rel="next"`, repo, n, url.QueryEscape(tags[n-1])))
			}
		}
	}
	body, err := json.Marshal(struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{repo, tags})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	return nil
}
