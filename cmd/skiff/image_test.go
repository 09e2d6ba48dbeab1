package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/engine"
	"github.com/skiffhq/skiff/internal/enginetest"
	"github.com/skiffhq/skiff/internal/imageregistry"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/runtime/image"
)

// testModule is a valid Wasm module with a custom section of size bytes.
func testModule(size int) []byte {
	payload := bytes.Repeat([]byte("skiff"), size/5+1)[:size]
	section := append([]byte{4}, "test"...)
	section = append(section, payload...)
	m := append([]byte("\x00asm\x01\x00\x00\x00"), 0)
	for v := uint64(len(section)); ; {
		c := byte(v & 0x7f)
		if v >>= 7; v != 0 {
			m = append(m, c|0x80)
			continue
		}
		m = append(m, c)
		break
	}
	return append(m, section...)
}

// TestImageImport runs the real `skiff image import` against an embedded
// engine, then pulls the image as a node agent does (resolve the pod's
// image: against the embedded registry, runtime/image over the bus).
func TestImageImport(t *testing.T) {
	bin := buildSkiff(t)
	e, err := engine.New(engine.Config{DataDir: t.TempDir(), NodeName: "import-test", APIListen: "127.0.0.1:0", BusListen: "127.0.0.1:0", ImageHosts: []string{"loopback"},
		Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())

	dir := t.TempDir()
	wasm := testModule(1<<20 + 4321) // over one NATS message
	file := filepath.Join(dir, "hello.wasm")
	if err := os.WriteFile(file, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	// The digest a node's own import gives the same bytes.
	local, err := image.New(image.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	imported, err := local.Import(ctx, wasm, "hello:1")
	if err != nil {
		t.Fatal(err)
	}

	run := func(env []string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "HOME="+dir, "KUBECONFIG=")
		cmd.Env = append(cmd.Env, env...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return strings.TrimSpace(out.String()) + strings.TrimSpace(errOut.String()), err
	}
	pull := func(podImage string) ([]byte, string) {
		t.Helper()
		conn, err := enginetest.DialBus(ctx, e, "agent-test")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ref, ok, err := imageregistry.NewClient(conn).Resolve(ctx, podImage)
		if err != nil || !ok {
			t.Fatalf("Resolve(%s): %q %v %v", podImage, ref, ok, err)
		}
		store, err := image.New(image.Config{Dir: t.TempDir(), Transport: imageregistry.Transport(conn, http.DefaultTransport)})
		if err != nil {
			t.Fatal(err)
		}
		img, err := store.Pull(ctx, ref, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		mod, err := store.Module(img)
		if err != nil {
			t.Fatal(err)
		}
		return mod, img.Digest
	}

	t.Run("flag", func(t *testing.T) {
		out, err := run(nil, "image", "import", "--kubeconfig", e.KubeconfigPath(), file, "hello:1")
		if err != nil {
			t.Fatalf("import: %v\n%s", err, out)
		}
		if want := imageregistry.Host + "/hello:1@" + imported.Digest; out != want {
			t.Fatalf("printed %q, want %q", out, want)
		}
		mod, digest := pull("hello:1")
		if !bytes.Equal(mod, wasm) || digest != imported.Digest {
			t.Fatalf("pulled %d bytes with digest %s; want %d bytes, %s", len(mod), digest, len(wasm), imported.Digest)
		}
	})
	t.Run("KUBECONFIG", func(t *testing.T) {
		out, err := run([]string{"KUBECONFIG=" + e.KubeconfigPath()}, "image", "import", file, "demo/app:v2")
		if err != nil || !strings.HasPrefix(out, imageregistry.Host+"/demo/app:v2@sha256:") {
			t.Fatalf("import: %v\n%s", err, out)
		}
		if mod, _ := pull("docker.io/demo/app:v2"); !bytes.Equal(mod, wasm) {
			t.Fatal("demo/app:v2 differs")
		}
	})
	t.Run("home kubeconfig", func(t *testing.T) {
		kc, err := os.ReadFile(e.KubeconfigPath())
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dir, ".kube"), 0o700)
		if err := os.WriteFile(filepath.Join(dir, ".kube", "config"), kc, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(dir, ".kube", "config"))
		if out, err := run(nil, "image", "import", file, "home"); err != nil || !strings.HasPrefix(out, imageregistry.Host+"/home:latest@") {
			t.Fatalf("import: %v\n%s", err, out)
		}
	})
	t.Run("failures", func(t *testing.T) {
		notWasm := filepath.Join(dir, "image.tar")
		os.WriteFile(notWasm, []byte("not a module at all"), 0o644)
		kc, _ := os.ReadFile(e.KubeconfigPath())
		badKC := filepath.Join(dir, "bad-token.yaml")
		os.WriteFile(badKC, bytes.Replace(kc, []byte("token: "), []byte("token: wrong"), 1), 0o600)
		for _, tt := range []struct {
			name string
			args []string
			want string
		}{
			{"not wasm", []string{"image", "import", "--kubeconfig", e.KubeconfigPath(), notWasm, "x:1"}, "not a Wasm module"},
			{"missing file", []string{"image", "import", "--kubeconfig", e.KubeconfigPath(), filepath.Join(dir, "nope.wasm"), "x:1"}, "no such file"},
			{"registry host in NAME", []string{"image", "import", "--kubeconfig", e.KubeconfigPath(), file, "ghcr.io/x/y:1"}, "without a registry host"},
			{"bad NAME", []string{"image", "import", "--kubeconfig", e.KubeconfigPath(), file, "Upper:1"}, "NAME:TAG"},
			{"wrong token", []string{"image", "import", "--kubeconfig", badKC, file, "wt:1"}, "refused the kubeconfig's credentials"},
			{"no kubeconfig", []string{"image", "import", file, "x:1"}, "kubeconfig"},
			{"one argument", []string{"image", "import", file}, "accepts 2 arg"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				out, err := run(nil, tt.args...)
				if err == nil || !strings.Contains(out, tt.want) {
					t.Fatalf("err %v, output %q; want a failure mentioning %q", err, out, tt.want)
				}
			})
		}
	})
	t.Run("help", func(t *testing.T) {
		out, err := run(nil, "image", "import", "--help")
		if err != nil || !strings.Contains(out, "--kubeconfig") || !strings.Contains(out, "tarballs are not accepted") {
			t.Fatalf("help: %v\n%s", err, out)
		}
	})
}
