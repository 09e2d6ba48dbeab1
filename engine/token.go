package engine

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiffhq/skiff/internal/apiserver/pki"
	"github.com/skiffhq/skiff/internal/atomicfile"
	"github.com/skiffhq/skiff/internal/imageregistry"
	"github.com/skiffhq/skiff/internal/node/join"
)

// loadToken reads or makes the cluster secret and writes DataDir/token in
// the form that pins the cluster CA (join.Token: "K10<sha256 of the
// CA>::server:<secret>"), which agents and joining servers check the
// server with instead of trusting it on first use. A data directory from
// before holds the bare secret: it is kept, and the file rewritten in the
// pinned form, so old clusters keep working. Config.Token, when given,
// is the secret of a new directory and must match an existing one's. It
// returns the secret (the API's bearer token, the bus's node password) and
// the full token.
func (e *Engine) loadToken() (secret, full string, err error) {
	path := filepath.Join(e.cfg.DataDir, tokenFile)
	var given join.Token
	if e.cfg.Token != "" {
		if given, err = join.ParseToken(e.cfg.Token); err != nil {
			return "", "", fmt.Errorf("token: %w", err)
		}
	}
	_, statErr := os.Stat(path)
	text, err := loadOrCreate(path, given.Secret)
	if err != nil {
		return "", "", err
	}
	tok, err := join.ParseToken(text)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	ca, err := pki.CA(filepath.Join(e.cfg.DataDir, pkiSubdir))
	if err != nil {
		return "", "", err
	}
	if e.cfg.Token != "" {
		switch {
		case statErr == nil && subtle.ConstantTimeCompare([]byte(given.Secret), []byte(tok.Secret)) != 1:
			return "", "", fmt.Errorf("%w: its secret differs from %s's", ErrTokenMismatch, path)
		case given.CAHash != nil && !bytes.Equal(given.CAHash, join.CAHash(ca.Raw)):
			return "", "", fmt.Errorf("%w: it pins another CA than %s (sha256 %x)", ErrTokenMismatch,
				filepath.Join(e.cfg.DataDir, pkiSubdir), join.CAHash(ca.Raw))
		}
	}
	full = join.NewToken(ca.Raw, tok.Secret).String()
	if strings.TrimSpace(text) != full {
		if err := atomicfile.Write(path, []byte(full+"\n")); err != nil {
			return "", "", fmt.Errorf("write %s: %w", path, err)
		}
	}
	return tok.Secret, full, nil
}

// JoinToken is the cluster token in the form agents join with (what
// DataDir/token holds): the secret with the cluster CA's hash. Empty
// before Start.
func (e *Engine) JoinToken() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.joinToken
}

// authenticate lets through requests that carry the cluster secret or the
// full token (DataDir/token) as a bearer token or a Basic password, as the
// API does: an operator may paste either.
func (e *Engine) authenticate(next http.Handler) http.Handler {
	inner := imageregistry.Authenticate(e.token, next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") &&
			subtle.ConstantTimeCompare([]byte(strings.TrimSpace(h[7:])), []byte(e.joinToken)) == 1 {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+e.token)
		} else if user, pw, ok := r.BasicAuth(); ok && subtle.ConstantTimeCompare([]byte(pw), []byte(e.joinToken)) == 1 {
			r = r.Clone(r.Context())
			r.SetBasicAuth(user, e.token)
		}
		inner.ServeHTTP(w, r)
	})
}
