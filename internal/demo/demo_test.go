package demo

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/engine"
	"github.com/skiffhq/skiff/internal/testutil"
)

// The demo is what a newcomer sees first: it must come up on a fresh engine
// and answer through its Service's ClusterIP, and installing it again (a
// restart with --demo) must keep working.
func TestInstallServesThroughTheService(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := engine.Config{DataDir: dir, NodeName: "demo", APIListen: "127.0.0.1:0", ServiceCIDR: "127.71.0.0/16",
		PodCIDR: "127.72.0.0/16", ImageHosts: []string{"loopback"}, Logger: testutil.Logger(t)}
	for round := range 2 {
		e, err := engine.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		url, err := Install(ctx, e, 2*time.Minute)
		if err != nil {
			e.Stop(ctx)
			t.Fatalf("round %d: %v", round, err)
		}
		if !strings.HasPrefix(url, "http://127.71.") {
			t.Errorf("url %q is not on the Service's ClusterIP", url)
		}
		resp, err := http.Get(url)
		if err != nil {
			e.Stop(ctx)
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "Hello from a Wasm pod on skiff from hello-") {
			t.Errorf("round %d: answer %q", round, body)
		}
		if err := e.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
