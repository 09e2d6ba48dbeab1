package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/agent/volumes"
	"github.com/skiffhq/skiff/internal/node/protocol"
	"github.com/skiffhq/skiff/internal/testutil"
)

// The node's token manager over a real in-process bus: a projected token
// volume gets the control plane's token for the pod; a refresh of the
// volume keeps it until 80% of its life has gone, then writes a new one,
// as the kubelet rotates projected tokens.
func TestProjectedTokenRefreshedAt80Percent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := bus.Start(ctx, bus.Config{Name: "tokens-test", Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cp, err := srv.Connect(ctx, "control-plane")
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	conn, err := srv.Connect(ctx, "agent")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	now := time.Unix(1_800_000_000, 0)
	var minted atomic.Int32
	subject, _ := bus.SubjectNodeObjects("n")
	sub, err := bus.Serve(ctx, cp, subject, "", func(_ context.Context, req protocol.ObjectRequest) (protocol.ObjectResponse, error) {
		if req.Kind != "ServiceAccountToken" || req.Name != "web" || req.UID != "uid-1" || req.ExpirationSeconds != 3607 {
			return protocol.ObjectResponse{}, fmt.Errorf("unexpected request %+v", req)
		}
		n := minted.Add(1)
		return protocol.ObjectResponse{Token: fmt.Sprintf("token-%d", n),
			TokenExpiration: now.Add(time.Duration(req.ExpirationSeconds) * time.Second)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	if err := cp.Flush(ctx); err != nil { // the responder is subscribed before the agent asks
		t.Fatal(err)
	}

	a := &Agent{cfg: Config{NodeName: "n", Bus: conn}}
	clock := now
	a.tokens = &podTokens{a: a, now: func() time.Time { return clock }, cache: map[tokenKey]cachedToken{}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "uid-1"}}
	vol := corev1.Volume{Name: "kube-api-access-abcde", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To[int32](0o644),
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token",
			ExpirationSeconds: ptr.To[int64](3607)}}}}}}
	dir := t.TempDir()
	read := func() string {
		t.Helper()
		host, err := volumes.SetUpVolume(ctx, pod, dir, vol, volumes.Sources{Tokens: a.tokens})
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(host, "token"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read(); got != "token-1" {
		t.Fatalf("token file %q", got)
	}
	clock = now.Add(3607 * time.Second * 79 / 100) // before 80%: the same token
	if got := read(); got != "token-1" || minted.Load() != 1 {
		t.Errorf("at 79%%: %q after %d requests, want token-1 after 1", got, minted.Load())
	}
	clock = now.Add(3607 * time.Second * 81 / 100) // past 80%: a new one
	if got := read(); got != "token-2" {
		t.Errorf("at 81%%: %q, want token-2", got)
	}
	a.tokens.forget("uid-1")
	if len(a.tokens.cache) != 0 {
		t.Errorf("a stopped pod's tokens are kept: %v", a.tokens.cache)
	}
}
