package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// blobPath is where the blob with digest h lives.
func (s *Store) blobPath(h v1.Hash) string { return filepath.Join(s.blobDir, h.Hex) }

// blobPresent reports whether e's module is in the store with the right
// content. A file unchanged (size, mtime) since it was last hashed is
// trusted; anything else is hashed again. Entries without a module are
// always present: there is nothing of theirs to keep.
func (s *Store) blobPresent(e entry) bool {
	if !e.Wasm {
		return true
	}
	h, err := v1.NewHash(e.ModuleDigest)
	if err != nil {
		return false
	}
	return s.blobOK(h, e.ModuleSize)
}

// blobOK reports whether the blob h is stored intact (and, when size > 0,
// has that size).
func (s *Store) blobOK(h v1.Hash, size int64) bool {
	fi, err := os.Stat(s.blobPath(h))
	if err != nil || !fi.Mode().IsRegular() || (size > 0 && fi.Size() != size) {
		return false
	}
	st := stamp{size: fi.Size(), modTime: fi.ModTime()}
	s.mu.Lock()
	known, ok := s.verified[h.Hex]
	s.mu.Unlock()
	if ok && known == st {
		return true
	}
	// Hash by streaming: this path only answers yes or no.
	f, err := os.Open(s.blobPath(h))
	if err != nil {
		return false
	}
	defer f.Close()
	return s.checkBlob(h, f, nil) == nil
}

// readBlob returns the blob h after hashing it. A blob that does not match
// is removed, so that the next Pull downloads it again.
func (s *Store) readBlob(h v1.Hash) ([]byte, error) {
	f, err := os.Open(s.blobPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", h, ErrNotPresent)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if err := s.checkBlob(h, f, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkBlob hashes the open blob file f (copying it to w when w is not
// nil) and compares with h. On a mismatch the blob is removed and the error
// wraps ErrDigestMismatch; on a match the file's stamp is remembered.
func (s *Store) checkBlob(h v1.Hash, f *os.File, w *bytes.Buffer) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > maxModuleSize {
		return fmt.Errorf("blob %s: %d bytes is over the %d-byte limit", h, fi.Size(), maxModuleSize)
	}
	hasher := sha256.New()
	dst := io.Writer(hasher)
	if w != nil {
		w.Grow(int(fi.Size()))
		dst = io.MultiWriter(hasher, w)
	}
	if _, err := io.Copy(dst, io.LimitReader(f, maxModuleSize+1)); err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	if got := hex.EncodeToString(hasher.Sum(nil)); got != h.Hex {
		s.log.Warn("corrupt blob removed; the next pull fetches it again", "digest", h.String(), "got", "sha256:"+got)
		s.removeCorrupt(h, fi)
		return fmt.Errorf("blob %s: %w (content hashes to sha256:%s)", h, ErrDigestMismatch, got)
	}
	s.mu.Lock()
	s.verified[h.Hex] = stamp{size: fi.Size(), modTime: fi.ModTime()}
	s.mu.Unlock()
	return nil
}

// removeCorrupt deletes the blob h if it is still the file that was found
// corrupt (a repaired blob may have been renamed into place meanwhile).
func (s *Store) removeCorrupt(h v1.Hash, bad fs.FileInfo) {
	s.blobMu.Lock()
	defer s.blobMu.Unlock()
	s.mu.Lock()
	delete(s.verified, h.Hex)
	s.mu.Unlock()
	if now, err := os.Stat(s.blobPath(h)); err == nil && os.SameFile(now, bad) {
		if err := os.Remove(s.blobPath(h)); err != nil {
			s.log.Warn("cannot remove corrupt blob", "digest", h.String(), "err", err)
		}
	}
}

// putBlob stores b under its own digest.
func (s *Store) putBlob(b []byte) (v1.Hash, int64, error) {
	sum := sha256.Sum256(b)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if s.blobOK(h, int64(len(b))) {
		return h, int64(len(b)), nil
	}
	if err := s.writeBlob(bytes.NewReader(b), h, int64(len(b))); err != nil {
		return v1.Hash{}, 0, err
	}
	return h, int64(len(b)), nil
}

// writeBlob copies r into the store as blob want, which must be exactly size
// bytes (size < 0: any size up to the limit). The content is hashed on the
// way to a temp file in the blob directory and only renamed into place,
// after an fsync, if it matches: a blob under a digest always had it.
func (s *Store) writeBlob(r io.Reader, want v1.Hash, size int64) error {
	if want.Algorithm != "sha256" {
		return fmt.Errorf("blob %s: unsupported digest algorithm", want)
	}
	if size > maxModuleSize {
		return fmt.Errorf("blob %s: %d bytes is over the %d-byte limit", want, size, maxModuleSize)
	}
	f, err := os.CreateTemp(s.blobDir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	hasher := sha256.New()
	n, copyErr := io.Copy(io.MultiWriter(f, hasher), io.LimitReader(r, maxModuleSize+1))
	got := hex.EncodeToString(hasher.Sum(nil))
	switch {
	case copyErr != nil && (size < 0 || n != size || got == want.Hex):
		// A transfer failure. go-containerregistry's own verifying reader
		// fails at EOF when the digest is wrong; that case (all bytes
		// read, wrong hash) is reported as a mismatch below instead.
		return fmt.Errorf("blob %s: download: %w", want, copyErr)
	case n > maxModuleSize:
		return fmt.Errorf("blob %s: over the %d-byte limit", want, maxModuleSize)
	case size >= 0 && n != size:
		return fmt.Errorf("blob %s: got %d bytes, the manifest says %d", want, n, size)
	case got != want.Hex:
		return fmt.Errorf("blob %s: %w (downloaded content hashes to sha256:%s)", want, ErrDigestMismatch, got)
	}
	if err := f.Chmod(0o444); err != nil { // blobs are immutable; make accidents harder
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	s.blobMu.Lock()
	err = os.Rename(tmp, s.blobPath(want))
	s.blobMu.Unlock()
	if err != nil {
		return err
	}
	done = true
	s.mu.Lock()
	s.verified[want.Hex] = stamp{size: fi.Size(), modTime: fi.ModTime()}
	s.mu.Unlock()
	return syncDir(s.blobDir)
}

// removeStaleTemps deletes temp files a crash left behind. Only one Store
// uses a Dir, so at New no temp file can belong to a live writer.
func (s *Store) removeStaleTemps() {
	for _, dir := range []string{s.dir, s.blobDir} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, de := range ents {
			if strings.HasPrefix(de.Name(), ".tmp-") {
				os.Remove(filepath.Join(dir, de.Name()))
			}
		}
	}
}
