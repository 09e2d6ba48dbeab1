package apiserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/apiserver/pki"
	"github.com/skiffhq/skiff/raft"
)

// grepDir reports the files under dir that contain any of needles.
func grepDir(t testing.TB, dir string, needles ...[]byte) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				hits = append(hits, p)
			}
		}
		return nil
	})
	return hits
}

func TestSecretsAreEncryptedAtRest(t *testing.T) {
	s, cfg := newTestServer(t, 100)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	secretValue := []byte("hunter2-correct-horse-battery-staple")
	plainValue := "plain-configmap-value-for-contrast"
	if _, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Data:       map[string][]byte{"password": secretValue},
		StringData: map[string]string{"token": "stringdata-secret-value"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "contrast"}, Data: map[string]string{"v": plainValue}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.cfg.Store.Snapshot(); err != nil { // into the snapshot files too
		t.Fatal(err)
	}
	raftDir := filepath.Dir(s.cfg.PKIDir) // the test server's data dir
	// The check can fail: the ConfigMap value, not encrypted, is found.
	if hits := grepDir(t, raftDir, []byte(plainValue)); len(hits) == 0 {
		t.Fatal("the grep finds nothing at all: it would not notice a secret in clear")
	}
	needles := [][]byte{secretValue, []byte(base64.StdEncoding.EncodeToString(secretValue)),
		[]byte("stringdata-secret-value"), []byte(base64.StdEncoding.EncodeToString([]byte("stringdata-secret-value")))}
	if hits := grepDir(t, filepath.Join(raftDir, "raft"), needles...); len(hits) > 0 {
		t.Fatalf("secret value in clear in %v", hits)
	}
	got, err := cs.CoreV1().Secrets("default").Get(ctx, "db", metav1.GetOptions{})
	if err != nil || !bytes.Equal(got.Data["password"], secretValue) {
		t.Fatalf("read back: %v %v", got.Data, err)
	}

	// Rotation: a new key encrypts, the secret is rewritten with it and
	// still reads the same.
	name, err := s.RotateEncryptionKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kv, _, err := s.cfg.Store.Get(ctx, "/registry/core/secrets/default/db", raft.ReadOptions{})
	if err != nil || pki.KeyName(kv.Value) != name {
		t.Fatalf("after rotation the secret is sealed with %q, want %q (%v)", pki.KeyName(kv.Value), name, err)
	}
	got, err = cs.CoreV1().Secrets("default").Get(ctx, "db", metav1.GetOptions{})
	if err != nil || !bytes.Equal(got.Data["password"], secretValue) {
		t.Fatalf("read after rotation: %v %v", got.Data, err)
	}
	// A restart reads the key ring back from disk.
	k2, err := pki.LoadKeyring(filepath.Join(s.cfg.PKIDir, "encryption-keys"))
	if err != nil {
		t.Fatalf("reload key ring: %v", err)
	}
	if names := k2.Names(); len(names) != 2 || names[0] != name {
		t.Fatalf("reloaded key ring has keys %v, want 2 with %q first", names, name)
	}
	if _, err := k2.Decrypt(kv.Value); err != nil {
		t.Fatalf("reloaded ring cannot open the value: %v", err)
	}
}
