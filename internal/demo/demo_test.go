package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
		if round == 0 {
			crashAnInstance(t, e)
		}
		if err := e.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// An SDK handler instance that exits is replaced, and kubectl sees it as a
// container restart: restartCount and lastState with the exit code.
func crashAnInstance(t *testing.T, e *engine.Engine) {
	t.Helper()
	ctx := context.Background()
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + Name})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("demo pods: %v", err)
	}
	pod := pods.Items[0]
	resp, err := http.Get("http://" + pod.Status.PodIP + ":8080/crash")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("/crash answered %d, want 500 (the instance exited)", resp.StatusCode)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		p, err := cs.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := p.Status.ContainerStatuses[0]
		if st.RestartCount != 1 || st.LastTerminationState.Terminated == nil || st.LastTerminationState.Terminated.ExitCode != 1 {
			return fmt.Errorf("container status %+v", st)
		}
		if st.State.Running == nil || !st.Ready {
			return fmt.Errorf("not running and ready again: %+v", st.State)
		}
		return nil
	})
	// The next request is served by a new instance.
	resp, err = http.Get("http://" + pod.Status.PodIP + ":8080/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after the crash: %d", resp.StatusCode)
	}
}
