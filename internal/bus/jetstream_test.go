package bus

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestJetStreamPersists writes through JetStream on an in-process connection,
// restarts the server on the same directory and reads the value back: what
// JetStream acknowledged is on disk.
func TestJetStreamPersists(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Name: "js-1", JetStreamDir: dir}

	s := start(t, cfg)
	js, err := jetstream.New(inProc(t, s, "writer").NATS())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(testCtx(t), jetstream.KeyValueConfig{Bucket: "persist", Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	if _, err := kv.Put(testCtx(t), "k", []byte("v1")); err != nil {
		t.Fatalf("put: %v", err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
		t.Fatalf("no JetStream files under JetStreamDir: %v", err)
	}

	s2 := start(t, cfg)
	js2, err := jetstream.New(inProc(t, s2, "reader").NATS())
	if err != nil {
		t.Fatal(err)
	}
	kv2, err := js2.KeyValue(testCtx(t), "persist")
	if err != nil {
		t.Fatalf("bucket after restart: %v", err)
	}
	e, err := kv2.Get(testCtx(t), "k")
	if err != nil || string(e.Value()) != "v1" {
		t.Fatalf("after restart: %v %v", e, err)
	}
}

// TestJetStreamOffByDefault keeps the old behaviour: no JetStreamDir, no
// JetStream, nothing on disk.
func TestJetStreamOffByDefault(t *testing.T) {
	s := start(t, Config{Name: "no-js"})
	js, err := jetstream.New(inProc(t, s, "c").NATS())
	if err != nil {
		t.Fatal(err)
	}
	_, err = js.AccountInfo(testCtx(t))
	if !errors.Is(err, jetstream.ErrJetStreamNotEnabled) && !errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		t.Fatalf("AccountInfo without JetStreamDir: %v, want JetStream not enabled", err)
	}
}

func TestJetStreamConfigValidation(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"max store without dir", Config{Name: "n", JetStreamMaxStore: 1 << 20}, "JetStreamDir is empty"},
		{"negative max store", Config{Name: "n", JetStreamDir: t.TempDir(), JetStreamMaxStore: -1}, "negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Start(testCtx(t), tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Start succeeded, want a config error")
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrInvalidConfig mentioning %q", err, tt.want)
			}
		})
	}
}
