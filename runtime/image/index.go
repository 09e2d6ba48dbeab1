package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// indexVersion is bumped when the index format changes incompatibly.
const indexVersion = 1

// entry is what one reference resolved to, as kept in the index.
type entry struct {
	Repo         string      `json:"repo"`
	Digest       string      `json:"digest"`
	MediaType    string      `json:"mediaType,omitempty"`
	Wasm         bool        `json:"wasm"`
	ModuleDigest string      `json:"moduleDigest,omitempty"`
	ModuleSize   int64       `json:"moduleSize,omitempty"`
	Config       ImageConfig `json:"config"`
	// Imported entries came from Import, not from a registry.
	Imported bool      `json:"imported,omitempty"`
	Updated  time.Time `json:"updated"`
}

// same reports whether two entries describe the same image (ignoring when
// they were recorded), so an unchanged re-resolve writes nothing.
func (e entry) same(o entry) bool {
	return e.Repo == o.Repo && e.Digest == o.Digest && e.MediaType == o.MediaType &&
		e.Wasm == o.Wasm && e.ModuleDigest == o.ModuleDigest && e.ModuleSize == o.ModuleSize &&
		e.Imported == o.Imported && e.Config.WorkingDir == o.Config.WorkingDir &&
		slices.Equal(e.Config.Entrypoint, o.Config.Entrypoint) && slices.Equal(e.Config.Cmd, o.Config.Cmd) &&
		slices.Equal(e.Config.Env, o.Config.Env)
}

type indexFile struct {
	Version int              `json:"version"`
	Images  map[string]entry `json:"images"`
}

func (s *Store) indexPath() string { return filepath.Join(s.dir, "index.json") }

// loadIndex reads the index. A missing file is an empty store; an
// unreadable one is set aside (kept for inspection) and the store starts
// empty; a newer version is an error, because rewriting it would lose what a
// newer skiff recorded.
func (s *Store) loadIndex() (map[string]entry, error) {
	b, err := os.ReadFile(s.indexPath())
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]entry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image: read index: %w", err)
	}
	var f indexFile
	if err := json.Unmarshal(b, &f); err != nil {
		aside := s.indexPath() + ".corrupt-" + time.Now().UTC().Format("20060102T150405")
		if rerr := os.Rename(s.indexPath(), aside); rerr != nil {
			return nil, fmt.Errorf("image: index is corrupt (%v) and cannot be moved aside: %w", err, rerr)
		}
		s.log.Warn("image index corrupt; starting empty", "err", err, "movedTo", aside)
		return map[string]entry{}, nil
	}
	if f.Version > indexVersion {
		return nil, fmt.Errorf("image: index version %d is newer than this skiff understands (%d)", f.Version, indexVersion)
	}
	if f.Images == nil {
		f.Images = map[string]entry{}
	}
	return f.Images, nil
}

// lookup returns the entry for an index key.
func (s *Store) lookup(key string) (entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.index[key]
	return e, ok
}

// record stores e under ref and, for a tag, also under repo@digest, so a
// later pull by digest finds it locally. Content behind a digest never
// changes, so the digest entry stays right when the tag moves on.
func (s *Store) record(ref name.Reference, e entry) error {
	keys := []string{ref.Name()}
	if _, isTag := ref.(name.Tag); isTag {
		keys = append(keys, ref.Context().Digest(e.Digest).Name())
	}
	e.Updated = time.Now().UTC()
	changed := false
	s.mu.Lock()
	for _, k := range keys {
		if old, ok := s.index[k]; ok && old.same(e) {
			continue
		}
		s.index[k] = e
		changed = true
	}
	s.mu.Unlock()
	if !changed {
		return nil
	}
	return s.saveIndex()
}

// saveIndex writes the index atomically: temp file, fsync, rename, fsync
// of the directory, so a crash leaves the old or the new index, never half.
func (s *Store) saveIndex() error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	b, err := json.MarshalIndent(indexFile{Version: indexVersion, Images: s.index}, "", "  ")
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encode index: %w", err)
	}
	if err := writeFileAtomic(s.dir, s.indexPath(), b, 0o644); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path (in dir) with b.
func writeFileAtomic(dir, path string, b []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
