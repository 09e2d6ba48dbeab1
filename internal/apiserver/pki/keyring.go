package pki

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/skiffhq/skiff/internal/atomicfile"
)

// encryptedPrefix starts every encrypted value, followed by the key's name
// and ':'. The name lets a reader pick the right key after a rotation; the
// prefix lets it tell encrypted values from values written before
// encryption was on (which are read as they are).
const encryptedPrefix = "k8s:enc:aesgcm:v1:"

// Keyring encrypts Secret values at rest with AES-256-GCM. The first key
// encrypts; every key decrypts, so a rotation adds a key in front and the
// old values stay readable until they are rewritten.
type Keyring struct {
	path string

	mu   sync.RWMutex
	keys []namedKey
}

type namedKey struct {
	name string
	aead cipher.AEAD
}

// LoadKeyring reads path ("name:base64-key" lines, newest first), creating
// it with one new key if it does not exist.
func LoadKeyring(path string) (*Keyring, error) {
	k := &Keyring{path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if _, err := k.Rotate(); err != nil {
			return nil, err
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read encryption keys: %w", err)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		name, enc, ok := strings.Cut(strings.TrimSpace(line), ":")
		raw, derr := base64.StdEncoding.DecodeString(enc)
		if !ok || derr != nil || len(raw) != 32 || name == "" {
			return nil, fmt.Errorf("encryption keys %s: line %d is not name:base64(32 bytes)", path, i+1)
		}
		nk, err := newKey(name, raw)
		if err != nil {
			return nil, err
		}
		k.keys = append(k.keys, nk)
	}
	return k, nil
}

func newKey(name string, raw []byte) (namedKey, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return namedKey{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return namedKey{}, err
	}
	return namedKey{name: name, aead: aead}, nil
}

// Rotate puts a new key in front (it encrypts from now on) and saves the
// ring. It returns the new key's name.
func (k *Keyring) Rotate() (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	name := fmt.Sprintf("key%d", len(k.keys)+1)
	nk, err := newKey(name, raw)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s:%s\n", name, base64.StdEncoding.EncodeToString(raw))
	old, err := os.ReadFile(k.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	buf.Write(old)
	if err := atomicfile.Write(k.path, buf.Bytes()); err != nil {
		return "", fmt.Errorf("save encryption keys: %w", err)
	}
	k.keys = append([]namedKey{nk}, k.keys...)
	return name, nil
}

// Encrypt seals plain with the newest key and a random nonce, behind the
// prefix and the key's name.
func (k *Keyring) Encrypt(plain []byte) ([]byte, error) {
	k.mu.RLock()
	key := k.keys[0]
	k.mu.RUnlock()
	nonce := make([]byte, key.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := []byte(encryptedPrefix + key.name + ":")
	out = append(out, nonce...)
	return key.aead.Seal(out, nonce, plain, nil), nil
}

// Decrypt opens a value; values without the prefix are returned as they are.
func (k *Keyring) Decrypt(v []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(v, []byte(encryptedPrefix))
	if !ok {
		return v, nil
	}
	name, sealed, ok := bytes.Cut(rest, []byte(":"))
	if !ok {
		return nil, errors.New("encrypted value without a key name")
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, key := range k.keys {
		if key.name != string(name) {
			continue
		}
		ns := key.aead.NonceSize()
		if len(sealed) < ns {
			return nil, errors.New("encrypted value too short")
		}
		plain, err := key.aead.Open(nil, sealed[:ns], sealed[ns:], nil)
		if err != nil {
			return nil, fmt.Errorf("decrypt with %s: %w", name, err)
		}
		return plain, nil
	}
	return nil, fmt.Errorf("value encrypted with unknown key %q", name)
}

// KeyName is the name of the key a stored value was encrypted with ("" when
// it is not encrypted).
func KeyName(v []byte) string {
	rest, ok := bytes.CutPrefix(v, []byte(encryptedPrefix))
	if !ok {
		return ""
	}
	name, _, _ := bytes.Cut(rest, []byte(":"))
	return string(name)
}

// Names are the ring's key names, newest (the one that encrypts) first.
func (k *Keyring) Names() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	names := make([]string, len(k.keys))
	for i, key := range k.keys {
		names[i] = key.name
	}
	return names
}
