package apiserver

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiffhq/skiff/internal/apiserver/pki"
	"github.com/skiffhq/skiff/raft"
)

// RotateEncryptionKey makes a new key the one that encrypts, then rewrites
// every Secret with it, so the old keys protect nothing any more (they stay
// in the ring for values a concurrent writer may still have sealed with
// them). It returns the new key's name.
func (s *Server) RotateEncryptionKey(ctx context.Context) (string, error) {
	name, err := s.objs.keys.Rotate()
	if err != nil {
		return "", err
	}
	res, _ := s.reg.Get(schema.GroupVersionResource{Version: "v1", Resource: "secrets"})
	page, err := s.cfg.Store.List(ctx, prefix(res, ""), raft.ListOptions{})
	if err != nil {
		return name, fmt.Errorf("list secrets to re-encrypt: %w", err)
	}
	for _, kv := range page.KVs {
		for attempt := 0; pki.KeyName(kv.Value) != name; attempt++ {
			plain, err := s.objs.keys.Decrypt(kv.Value)
			if err == nil {
				var sealed []byte
				if sealed, err = s.objs.keys.Encrypt(plain); err == nil {
					_, err = s.cfg.Store.Update(ctx, kv.Key, sealed, kv.ModRev)
				}
			}
			if errors.Is(err, raft.ErrConflict) && attempt < maxRetries {
				// Changed meanwhile: the writer sealed it with the new key, or we re-read and try again.
				if kv, _, err = s.cfg.Store.Get(ctx, kv.Key, raft.ReadOptions{}); err == nil {
					continue
				}
			}
			if errors.Is(err, raft.ErrNotFound) {
				break
			}
			if err != nil {
				return name, fmt.Errorf("re-encrypt %s: %w", kv.Key, err)
			}
			break
		}
	}
	return name, nil
}
