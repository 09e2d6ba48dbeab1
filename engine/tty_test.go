package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
)

// `kubectl exec -it`: with a TTY the module's stdin is a terminal (a
// pseudo-terminal on the node), input is echoed as a terminal does, and
// without one it is not a terminal.
func TestExecWithTTY(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"web:1": httpserverModule(t)})
	e, cs := moreEngine(t, "tty-1", "127.66.224.0/22")
	ctx := context.Background()
	createPods(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "term"}, Spec: corev1.PodSpec{NodeName: "tty-1",
		Containers: []corev1.Container{webContainer("web", host+"/web:1")}}})
	waitPod(t, cs, "default", "term", moreWait, "runs", func(p *corev1.Pod) bool { return isRunning(p, "web") })
	cfg, err := clientcmd.BuildConfigFromFlags("", e.KubeconfigPath()) // upgrades need a real connection
	if err != nil {
		t.Fatal(err)
	}
	netcs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(tty bool, stdin string, cmd ...string) string {
		t.Helper()
		u := netcs.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("term").SubResource("exec").
			VersionedParams(&corev1.PodExecOptions{Container: "web", Command: cmd, Stdin: stdin != "", Stdout: true, Stderr: !tty, TTY: tty},
				scheme.ParameterCodec).URL()
		ex, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var out strings.Builder
		opts := remotecommand.StreamOptions{Stdout: &out, Tty: tty}
		if stdin != "" {
			opts.Stdin = strings.NewReader(stdin)
		}
		if !tty {
			opts.Stderr = &out
		}
		if err := ex.StreamWithContext(ctx, opts); err != nil {
			t.Fatalf("exec %v (tty %v): %v\n%s", cmd, tty, err, out.String())
		}
		return out.String()
	}
	if out := exec(true, "", "httpserver", "tty"); !strings.Contains(out, "stdin is a terminal") {
		t.Errorf("with a TTY: %q", out)
	}
	if out := exec(false, "", "httpserver", "tty"); !strings.Contains(out, "stdin is not a terminal") {
		t.Errorf("without a TTY: %q", out)
	}
	// A terminal echoes what is typed, and ^D (EOT) ends the input.
	if out := exec(true, "typed line\n\x04", "httpserver", "cat", "-"); strings.Count(out, "typed line") != 2 {
		t.Errorf("cat - through a terminal: %q, want the line echoed and then printed", out)
	}
}
