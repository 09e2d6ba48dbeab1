package streams_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/skiffhq/skiff/engine"
	"github.com/skiffhq/skiff/internal/apiserver/podstreams"
	"github.com/skiffhq/skiff/internal/enginetest"
	"github.com/skiffhq/skiff/internal/streams"
	"github.com/skiffhq/skiff/internal/testutil"
)

// These tests run a real engine and the real kubectl v1.32 against it. The
// engine's own node agent does not serve streams here: a stream server for
// a node of the test's own ("worker-1") runs on a separate bus connection,
// with a stub Backend standing for the runtime. The relay and the API
// handlers are what is under test.

const (
	node = "worker-1"
	wait = 60 * time.Second
)

type cluster struct {
	e       *engine.Engine
	cs      kubernetes.Interface
	kc      string
	cache   string
	backend *stubRuntime
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl is not installed")
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	e, err := engine.New(engine.Config{DataDir: t.TempDir(), NodeName: "cp", APIListen: "127.0.0.1:0", BusListen: "127.0.0.1:0", ImageHosts: []string{"loopback"},
		Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(context.Background()) })
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	// The pods' port 8080 leads to this server.
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "served %s", r.URL.Path)
	}))
	t.Cleanup(web.Close)
	b := &stubRuntime{target: web.Listener.Addr().String(), release: make(chan struct{})}
	conn, err := enginetest.DialBus(ctx, e, node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	stop, err := streams.ServeNode(context.Background(), conn, node, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)

	for _, p := range []struct {
		name, node string
		containers []string
	}{
		{"web", node, []string{"app"}},
		{"multi", node, []string{"a", "b"}},
		{"big", node, []string{"big"}},
		{"pending", "", []string{"app"}},
		{"ghost", "ghost-node", []string{"app"}},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: "default"},
			Spec: corev1.PodSpec{NodeName: p.node}}
		if p.node == "" {
			pod.Spec.SchedulerName = "nobody" // stays unscheduled
		}
		for _, c := range p.containers {
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: c, Image: "example.com/app:1"})
		}
		pod, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.node != "" { // kubectl port-forward wants a running pod
			pod.Status.Phase = corev1.PodRunning
			if _, err := cs.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &cluster{e: e, cs: cs, kc: e.KubeconfigPath(), cache: t.TempDir(), backend: b}
}

// kubectl runs kubectl with env added to the environment and returns its
// stdout, stderr and exit code.
func (c *cluster) kubectl(t *testing.T, env []string, stdin io.Reader, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	cmd := c.command(ctx, env, args...)
	cmd.Stdin = stdin
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exit := (*exec.ExitError)(nil); errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("kubectl %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func (c *cluster) command(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", c.kc, "--cache-dir", c.cache}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// stubRuntime is the Backend of node worker-1: canned logs, a few
// commands, and port 8080 leading to a test HTTP server.
type stubRuntime struct {
	target  string
	release chan struct{} // lets a followed log end
}

var logLines = []string{"line 1", "line 2", "line 3", "line 4", "line 5"}

const bigLog = 50 << 20

func (b *stubRuntime) Logs(ctx context.Context, req streams.LogRequest, w io.Writer) error {
	if req.Options.Previous {
		return streams.ErrNoPrevious
	}
	if req.Container == "big" {
		chunk := []byte(strings.Repeat("0123456789abcdef", 4096))
		for sent := 0; sent < bigLog; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return err
			}
		}
		return nil
	}
	lines := logLines
	if n := req.Options.TailLines; n != nil && int(*n) < len(lines) {
		lines = lines[len(lines)-int(*n):]
	}
	for _, l := range lines {
		if _, err := fmt.Fprintf(w, "%s/%s: %s\n", req.Pod, req.Container, l); err != nil {
			return err
		}
	}
	if req.Options.Follow {
		select {
		case <-b.release:
		case <-ctx.Done():
			return ctx.Err()
		}
		_, err := fmt.Fprintln(w, "the end")
		return err
	}
	return nil
}

func (b *stubRuntime) Exec(ctx context.Context, req streams.ExecRequest, s streams.ExecStreams) (int, error) {
	args := req.Command[1:]
	switch req.Command[0] {
	case "echo":
		fmt.Fprintln(s.Stdout, strings.Join(args, " "))
		return 0, nil
	case "whoami":
		fmt.Fprintf(s.Stdout, "%s/%s/%s\n", req.Namespace, req.Pod, req.Container)
		return 0, nil
	case "fail": // fail CODE: a message on stderr, exit CODE
		fmt.Fprintln(s.Stderr, "oops")
		code, err := strconv.Atoi(args[0])
		return code, err
	case "size": // prints the terminal's first size
		if s.Resize == nil || s.Stderr != nil {
			return 2, nil
		}
		select {
		case sz := <-s.Resize:
			fmt.Fprintf(s.Stdout, "%dx%d\n", sz.Width, sz.Height)
			return 0, nil
		case <-ctx.Done():
			return 1, ctx.Err()
		}
	case "cat":
		if s.Stdin == nil {
			return 2, nil
		}
		_, err := io.Copy(s.Stdout, s.Stdin)
		return 0, err
	}
	return 0, fmt.Errorf("%s: executable file not found", req.Command[0])
}

func (b *stubRuntime) PortForward(ctx context.Context, req streams.PortForwardRequest, conn io.ReadWriteCloser) error {
	if req.Port != 8080 {
		return fmt.Errorf("nothing listens on port %d", req.Port)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", b.target)
	if err != nil {
		return err
	}
	defer c.Close()
	go func() {
		io.Copy(c, conn)
		c.(*net.TCPConn).CloseWrite()
	}()
	_, err = io.Copy(conn, c)
	return err
}

func TestKubectlLogs(t *testing.T) {
	c := startCluster(t)
	out, stderr, code := c.kubectl(t, nil, nil, "logs", "web")
	if code != 0 || out != "web/app: line 1\nweb/app: line 2\nweb/app: line 3\nweb/app: line 4\nweb/app: line 5\n" {
		t.Fatalf("logs: %d %q %q", code, out, stderr)
	}
	out, stderr, code = c.kubectl(t, nil, nil, "logs", "web", "--tail=2")
	if code != 0 || out != "web/app: line 4\nweb/app: line 5\n" {
		t.Fatalf("logs --tail=2: %d %q %q", code, out, stderr)
	}
	// kubectl picks the first container itself; -c picks another.
	out, stderr, code = c.kubectl(t, nil, nil, "logs", "multi", "-c", "b", "--tail=1")
	if code != 0 || out != "multi/b: line 5\n" {
		t.Fatalf("logs -c b: %d %q %q", code, out, stderr)
	}
	_, stderr, code = c.kubectl(t, nil, nil, "logs", "web", "--previous")
	if want := `Error from server (BadRequest): previous terminated container "app" in pod "web" not found`; code != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("logs --previous: %d %q, want %q", code, stderr, want)
	}
	// An unscheduled pod has no log yet: an empty answer, as Kubernetes gives.
	out, stderr, code = c.kubectl(t, nil, nil, "logs", "pending")
	if code != 0 || out != "" {
		t.Fatalf("logs of an unscheduled pod: %d %q %q", code, out, stderr)
	}
	_, stderr, code = c.kubectl(t, nil, nil, "logs", "ghost")
	if want := `Error from server (ServiceUnavailable): node unreachable: no agent serving streams for node "ghost-node" is connected`; code != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("logs from an unserved node: %d %q, want %q", code, stderr, want)
	}
}

// kubectl logs -f shows lines as they come (the answer is flushed, not
// held until the end) and exits when the container's log ends.
func TestKubectlLogsFollow(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	cmd := c.command(ctx, nil, "logs", "-f", "web")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	for i := range logLines {
		line, err := r.ReadString('\n')
		if err != nil || line != "web/app: "+logLines[i]+"\n" {
			t.Fatalf("line %d before the log ended: %q %v (stderr %q)", i, line, err, stderr.String())
		}
	}
	close(c.backend.release) // only now may the followed log end
	rest, err := io.ReadAll(r)
	if err != nil || string(rest) != "the end\n" {
		t.Fatalf("rest %q %v", rest, err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kubectl logs -f: %v %q", err, stderr.String())
	}
}

func TestKubectlExec(t *testing.T) {
	c := startCluster(t)
	for _, path := range []struct {
		name    string
		env     []string
		upgrade string
	}{
		{"websocket", nil, "exec-v5"},
		{"spdy", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"}, "exec-spdy"},
	} {
		t.Run(path.name, func(t *testing.T) {
			before := podstreams.Upgrades()[path.upgrade]
			out, stderr, code := c.kubectl(t, path.env, nil, "exec", "web", "--", "echo", "hello", "world")
			if code != 0 || out != "hello world\n" {
				t.Fatalf("exec echo: %d %q %q", code, out, stderr)
			}
			if n := podstreams.Upgrades()[path.upgrade] - before; n != 1 {
				t.Fatalf("%d requests served as %s, want 1", n, path.upgrade)
			}
			out, _, code = c.kubectl(t, path.env, nil, "exec", "multi", "-c", "b", "--", "whoami")
			if code != 0 || out != "default/multi/b\n" {
				t.Fatalf("exec -c b: %d %q", code, out)
			}
			// The command's exit code is kubectl's; its stderr is kubectl's.
			out, stderr, code = c.kubectl(t, path.env, nil, "exec", "web", "--", "fail", "3")
			if code != 3 || out != "" || !strings.Contains(stderr, "oops\n") {
				t.Fatalf("exec fail 3: %d %q %q", code, out, stderr)
			}
			// -i: stdin reaches the command, and its end ends cat.
			in := "hello\nstdin\n" + strings.Repeat("x", 300<<10) + "\n"
			out, stderr, code = c.kubectl(t, path.env, strings.NewReader(in), "exec", "-i", "web", "--", "cat")
			if code != 0 || out != in {
				t.Fatalf("exec -i cat: %d, %d bytes out of %d, %q", code, len(out), len(in), stderr)
			}
			_, stderr, code = c.kubectl(t, path.env, nil, "exec", "web", "--", "nosuch")
			if code == 0 || !strings.Contains(stderr, "nosuch: executable file not found") {
				t.Fatalf("exec nosuch: %d %q", code, stderr)
			}
		})
	}
}

// A terminal's size reaches the command, over both protocols (kubectl
// needs a real terminal for -t, so client-go's executors stand in for it).
func TestExecTTYResize(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kc) // over the network, as kubectl
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u := cs.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("web").SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Command: []string{"size"}, Stdout: true, TTY: true}, scheme.ParameterCodec).URL()
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
	if err != nil {
		t.Fatal(err)
	}
	sp, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	for name, ex := range map[string]remotecommand.Executor{"websocket": ws, "spdy": sp} {
		var out strings.Builder
		sizes := make(sizeQueue, 1)
		sizes <- remotecommand.TerminalSize{Width: 120, Height: 40}
		close(sizes)
		err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Tty: true, TerminalSizeQueue: sizes})
		if err != nil || out.String() != "120x40\n" {
			t.Errorf("%s: %q %v", name, out.String(), err)
		}
	}
}

// sizeQueue hands out the sizes sent on it until it is closed.
type sizeQueue chan remotecommand.TerminalSize

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	sz, ok := <-q
	if !ok {
		return nil
	}
	return &sz
}

func TestKubectlExecErrors(t *testing.T) {
	c := startCluster(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", "web", "-c", "nope", "--", "echo"}, "container nope is not valid for pod web"},
		{[]string{"exec", "ghost", "--", "echo"}, `node unreachable: no agent serving streams for node "ghost-node" is connected`},
	} {
		_, stderr, code := c.kubectl(t, nil, nil, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("kubectl %v: %d %q, want %q", tc.args, code, stderr, tc.want)
		}
	}
}

// The handlers' own answers, asked for directly: kubectl checks some of
// these itself first (the pod exists, the container is in it, the pod is
// not pending). Errors are read with Stream, which decodes the Status as
// kubectl logs does (DoRaw keeps only the code).
func TestStreamStatuses(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	pods := c.cs.CoreV1().Pods("default")
	_, err := pods.GetLogs("nosuch", &corev1.PodLogOptions{}).DoRaw(ctx)
	if !apierrors.IsNotFound(err) {
		t.Errorf("logs of a missing pod: %v", err)
	}
	err = c.cs.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("nosuch").
		SubResource("exec").Param("command", "echo").Param("stdout", "true").Do(ctx).Error()
	if !apierrors.IsNotFound(err) {
		t.Errorf("exec in a missing pod: %v", err)
	}
	err = c.cs.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("pending").
		SubResource("portforward").Do(ctx).Error()
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "pod pending does not have a host assigned") {
		t.Errorf("port-forward to an unscheduled pod: %v", err)
	}
	for _, tc := range []struct {
		pod  string
		opts corev1.PodLogOptions
		want string
	}{
		{"multi", corev1.PodLogOptions{}, "a container name must be specified for pod multi, choose one of: [a b]"},
		{"web", corev1.PodLogOptions{Container: "nope"}, "container nope is not valid for pod web"},
		{"web", corev1.PodLogOptions{Previous: true}, `previous terminated container "app" in pod "web" not found`},
	} {
		rc, err := pods.GetLogs(tc.pod, &tc.opts).Stream(ctx)
		if err == nil {
			rc.Close()
		}
		if !apierrors.IsBadRequest(err) || err.Error() != tc.want {
			t.Errorf("logs %s %+v: %v, want %q", tc.pod, tc.opts, err, tc.want)
		}
	}
	err = c.cs.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("pending").
		SubResource("exec").Param("command", "echo").Param("stdout", "true").Do(ctx).Error()
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "pod pending does not have a host assigned") {
		t.Errorf("exec in an unscheduled pod: %v", err)
	}
	_, err = pods.GetLogs("web", &corev1.PodLogOptions{TailLines: ptr(int64(-1))}).DoRaw(ctx)
	if !apierrors.IsInvalid(err) {
		t.Errorf("logs with tailLines -1: %v", err)
	}
	b, err := pods.GetLogs("web", &corev1.PodLogOptions{LimitBytes: ptr(int64(20))}).DoRaw(ctx)
	if err != nil || string(b) != "web/app: line 1\nweb/" {
		t.Errorf("logs with limitBytes 20: %q %v", b, err)
	}
	_, err = pods.GetLogs("ghost", &corev1.PodLogOptions{}).DoRaw(ctx)
	var st apierrors.APIStatus
	if !errors.As(err, &st) || st.Status().Code != http.StatusServiceUnavailable {
		t.Errorf("logs from an unserved node: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestKubectlPortForward(t *testing.T) {
	c := startCluster(t)
	for _, path := range []struct {
		name    string
		env     []string
		upgrade string
	}{
		{"websocket", nil, "portforward-tunnel"},
		{"spdy", []string{"KUBECTL_PORT_FORWARD_WEBSOCKETS=false"}, "portforward-spdy"},
	} {
		t.Run(path.name, func(t *testing.T) {
			before := podstreams.Upgrades()[path.upgrade]
			ctx, cancel := context.WithTimeout(t.Context(), wait)
			defer cancel()
			cmd := c.command(ctx, path.env, "port-forward", "pod/web", ":8080", ":9999", "--address", "127.0.0.1")
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr lockedBuilder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Kill() // our own child, by pid
				cmd.Wait()
			}()
			ports := map[string]string{}
			sc := bufio.NewScanner(stdout)
			re := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)`)
			for len(ports) < 2 && sc.Scan() {
				if m := re.FindStringSubmatch(sc.Text()); m != nil {
					ports[m[2]] = m[1]
				}
			}
			if len(ports) < 2 {
				t.Fatalf("kubectl port-forward did not start: %v %q", sc.Err(), stderr.String())
			}
			go io.Copy(io.Discard, stdout)
			// Three connections, one after the other: each is its own
			// stream pair, and its own session to the node.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: wait}
			for i := range 3 {
				resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%s/hello/%d", ports["8080"], i))
				if err != nil {
					t.Fatalf("GET through the forwarded port: %v (kubectl: %q)", err, stderr.String())
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(body) != fmt.Sprintf("served /hello/%d", i) {
					t.Fatalf("body %q %v", body, err)
				}
			}
			if n := podstreams.Upgrades()[path.upgrade] - before; n != 1 {
				t.Fatalf("%d requests served as %s, want 1", n, path.upgrade)
			}
			// A port the pod does not listen on: the Backend's error is
			// kubectl's to show, and the connection closes.
			if resp, err := client.Get("http://127.0.0.1:" + ports["9999"] + "/"); err == nil {
				resp.Body.Close()
				t.Fatalf("GET through a port with no listener answered %s", resp.Status)
			}
			testutil.Eventually(t, wait, func() error {
				if !strings.Contains(stderr.String(), "nothing listens on port 9999") {
					return fmt.Errorf("kubectl said %q", stderr.String())
				}
				return nil
			})
		})
	}
}

// A Backend writing 50 MiB of log to a client that stops reading is held
// back: the node side keeps at most one window in flight, the API side
// buffers at most one window, whatever the writer would do.
func TestLogsToSlowReaderStayBounded(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	testutil.Eventually(t, wait, func() error {
		if n := streams.NodeStats().Sessions; n != 0 {
			return fmt.Errorf("%d node sessions left from other tests", n)
		}
		return nil
	})
	streams.ResetPeaks()
	rc, err := c.cs.CoreV1().Pods("default").GetLogs("big", &corev1.PodLogOptions{}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// Read nothing more until the node's writer is blocked for credit: by
	// then every buffer on the way (TCP's included) is full.
	testutil.Eventually(t, wait, func() error {
		if st := streams.NodeStats(); st.Waiting != 1 {
			return fmt.Errorf("node writers waiting for credit: %d", st.Waiting)
		}
		return nil
	})
	if st := streams.NodeStats(); st.Outstanding > int64(streams.Window) {
		t.Fatalf("node side holds %d bytes in flight with a window of %d", st.Outstanding, streams.Window)
	}
	// Now read it all, in small pieces.
	start := time.Now()
	buf := make([]byte, 4096)
	n := 0
	for {
		k, err := rc.Read(buf)
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
	}
	if n != bigLog {
		t.Fatalf("read %d bytes, want %d", n, bigLog)
	}
	node, api := streams.NodeStats(), streams.APIStats()
	t.Logf("50 MiB in %v: node peak in flight %d, API peak buffered %d, window %d", time.Since(start).Round(time.Millisecond),
		node.PeakOutstanding, api.PeakBuffered, streams.Window)
	if node.PeakOutstanding > int64(streams.Window) || api.PeakBuffered > int64(streams.Window) {
		t.Fatalf("held beyond the window %d: node in flight %d, API buffered %d", streams.Window, node.PeakOutstanding, api.PeakBuffered)
	}
}

// lockedBuilder is a strings.Builder safe to read while a process writes it.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
