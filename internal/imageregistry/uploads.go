package imageregistry

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// uploads are the blob uploads in progress on this server: a file in the
// upload directory and the running hash of what was written to it. They
// are local on purpose: an upload's client talks to one server (the
// Location it was given), and only the finished, verified blob goes into
// the replicated store.
type uploads struct {
	dir  string
	max  int
	idle time.Duration

	mu sync.Mutex
	m  map[string]*upload
}

type upload struct {
	mu   sync.Mutex // held while a request works on the upload
	id   string
	repo string
	path string
	f    *os.File
	h    hash.Hash
	size int64
	last time.Time
	gone bool // removed: a request that waited for mu must not use it
}

func newUploads(dir string, max int, idle time.Duration) *uploads {
	return &uploads{dir: dir, max: max, idle: idle, m: map[string]*upload{}}
}

// start opens a new upload for repo.
func (us *uploads) start(repo string) (*upload, error) {
	us.sweep()
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	u := &upload{id: id, repo: repo, path: filepath.Join(us.dir, id), h: sha256.New(), last: time.Now()}
	us.mu.Lock()
	if len(us.m) >= us.max {
		us.mu.Unlock()
		return nil, newError(http.StatusTooManyRequests, codeTooManyRequests,
			"%d uploads are in progress; finish or cancel one first", us.max)
	}
	us.m[id] = u
	us.mu.Unlock()
	f, err := os.OpenFile(u.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		us.remove(u)
		return nil, fmt.Errorf("create upload file: %w", err)
	}
	u.f = f
	u.mu.Lock()
	return u, nil
}

// get returns repo's upload id, locked; release it with done.
func (us *uploads) get(repo, id string) (*upload, error) {
	unknown := newError(http.StatusNotFound, codeBlobUploadUnknown, "upload %q is not in progress", id)
	us.mu.Lock()
	u := us.m[id]
	us.mu.Unlock()
	if u == nil || u.repo != repo {
		return nil, unknown
	}
	u.mu.Lock()
	if u.gone {
		u.mu.Unlock()
		return nil, unknown
	}
	return u, nil
}

// done releases an upload taken by start or get.
func (us *uploads) done(u *upload) {
	u.last = time.Now()
	u.mu.Unlock()
}

// remove deletes an upload and its file. The caller holds u.mu (or u was
// never handed out).
func (us *uploads) remove(u *upload) {
	us.mu.Lock()
	delete(us.m, u.id)
	us.mu.Unlock()
	u.gone = true
	if u.f != nil {
		u.f.Close()
	}
	os.Remove(u.path)
}

// sweep drops uploads idle for longer than us.idle. Uploads busy with a
// request are skipped.
func (us *uploads) sweep() {
	us.mu.Lock()
	var stale []*upload
	for _, u := range us.m {
		stale = append(stale, u)
	}
	us.mu.Unlock()
	for _, u := range stale {
		if !u.mu.TryLock() {
			continue
		}
		if !u.gone && time.Since(u.last) > us.idle {
			us.remove(u)
		}
		u.mu.Unlock()
	}
}

func (us *uploads) closeAll() {
	us.mu.Lock()
	all := make([]*upload, 0, len(us.m))
	for _, u := range us.m {
		all = append(all, u)
	}
	us.mu.Unlock()
	for _, u := range all {
		u.mu.Lock()
		if !u.gone {
			us.remove(u)
		}
		u.mu.Unlock()
	}
}

// appendBody writes r to the upload, at most limit bytes in all. Any
// failure leaves the upload in an unknown state, so it is removed.
func (us *uploads) appendBody(u *upload, r io.Reader, limit int64) error {
	remaining := limit - u.size
	n, err := io.Copy(io.MultiWriter(u.f, u.h), io.LimitReader(r, remaining+1))
	u.size += n
	if err == nil && n > remaining {
		err = newError(http.StatusRequestEntityTooLarge, codeSizeInvalid, "blob is larger than the %d-byte limit", limit)
	}
	if err != nil {
		us.remove(u)
		var ae *apiError
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &ae):
			return err
		case errors.As(err, &mbe):
			return newError(http.StatusRequestEntityTooLarge, codeSizeInvalid, "request body over %d bytes", mbe.Limit)
		}
		return newError(http.StatusBadRequest, codeBlobUploadInvalid, "reading the upload failed: %v", err)
	}
	return nil
}

// digest is the sha256 digest of everything written so far.
func (u *upload) digest() string { return "sha256:" + hex.EncodeToString(u.h.Sum(nil)) }

// checkRange checks a PATCH's Content-Range ("start-end", inclusive, as the
// distribution spec writes it; "bytes=" or "bytes " prefixes tolerated)
// against the upload: chunks must arrive in order.
func (u *upload) checkRange(contentRange string, contentLength int64) error {
	if contentRange == "" {
		return nil
	}
	s := strings.TrimSpace(contentRange)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "bytes="), "bytes ")
	a, b, ok := strings.Cut(s, "-")
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(strings.SplitN(b, "/", 2)[0], 10, 64)
	if !ok || err1 != nil || err2 != nil || start < 0 || end < start {
		return newError(http.StatusBadRequest, codeBlobUploadInvalid, "malformed Content-Range %q", contentRange)
	}
	if start != u.size {
		return newError(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid,
			"chunk starts at %d but the upload has %d bytes", start, u.size)
	}
	if contentLength >= 0 && end-start+1 != contentLength {
		return newError(http.StatusBadRequest, codeBlobUploadInvalid,
			"Content-Range %q does not match Content-Length %d", contentRange, contentLength)
	}
	return nil
}

// rangeHeader is the Range header of upload responses: the bytes received.
func (u *upload) rangeHeader() string {
	if u.size == 0 {
		return "0-0"
	}
	return fmt.Sprintf("0-%d", u.size-1)
}
