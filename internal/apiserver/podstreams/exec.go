package podstreams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/skiffhq/skiff/internal/streams"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/httpstream/wsstream"
	rcconst "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/tools/remotecommand"
	kubeletrc "k8s.io/kubelet/pkg/cri/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// exec serves pods/NAME/exec (GET for WebSockets, POST for SPDY).
func (h *handlers) exec(w http.ResponseWriter, r *http.Request) { h.remoteCommand(w, r, "exec") }

// attach serves pods/NAME/attach, exec's protocols on the container's
// running process: kubectl attach, and kubectl run -i / debug -i after
// they started the container.
func (h *handlers) attach(w http.ResponseWriter, r *http.Request) { h.remoteCommand(w, r, "attach") }

func (h *handlers) remoteCommand(w http.ResponseWriter, r *http.Request, sub string) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		methodNotAllowed(w, r, sub)
		return
	}
	pod, err := h.pod(r)
	if err != nil {
		writeStatus(w, err)
		return
	}
	q := r.URL.Query()
	x := &executor{c: h.cfg.Client, pod: pod, command: q["command"], attach: sub == "attach"}
	for k, p := range map[string]*bool{"stdin": &x.stdin, "stdout": &x.stdout, "stderr": &x.stderr, "tty": &x.tty} {
		v := q[k]
		_ = runtime.Convert_Slice_string_To_bool(&v, p, nil) // never fails
	}
	if x.tty {
		x.stderr = false // a terminal has one output stream, as the kubelet has it
	}
	if x.container, err = container(pod, q.Get("container")); err != nil {
		writeStatus(w, err)
		return
	}
	switch {
	case pod.Spec.NodeName == "":
		err = noHost(pod)
	case !x.stdin && !x.stdout && !x.stderr:
		err = apierrors.NewBadRequest("you must specify at least 1 of stdin, stdout, stderr")
	case len(x.command) == 0 && !x.attach:
		err = apierrors.NewBadRequest("you must specify at least one command for the container")
	default:
		// Before the upgrade, so that an unreachable node is an HTTP error.
		if err = h.cfg.Client.Probe(r.Context(), pod.Spec.NodeName); err != nil {
			err = status(err, pod, x.container)
		}
	}
	if err != nil {
		writeStatus(w, err)
		return
	}
	uw, ok := upgradable(w)
	if !ok {
		writeStatus(w, apierrors.NewBadRequest(sub+" needs an HTTP/1.1 connection upgrade"))
		return
	}
	switch {
	case wsstream.IsWebSocketRequestWithStreamCloseProtocol(r):
		countUpgrade(sub + "-v5")
		h.execV5(uw, r, x)
		return
	case wsstream.IsWebSocketRequest(r):
		countUpgrade(sub + "-websocket")
	default:
		countUpgrade(sub + "-spdy")
	}
	// SPDY (v1–v4), and WebSocket clients older than v5: the kubelet's
	// server.
	opts := &kubeletrc.Options{Stdin: x.stdin, Stdout: x.stdout, Stderr: x.stderr, TTY: x.tty}
	if x.attach {
		kubeletrc.ServeAttach(uw, r, x, pod.Name, pod.UID, x.container, opts,
			idleTimeout, streamCreationTimeout, rcconst.SupportedStreamingProtocols)
		return
	}
	kubeletrc.ServeExec(uw, r, x, pod.Name, pod.UID, x.container, x.command, opts,
		idleTimeout, streamCreationTimeout, rcconst.SupportedStreamingProtocols)
}

// executor runs one exec or attach request through the relay; it is the
// kubelet server's Executor and Attacher.
type executor struct {
	c                          *streams.Client
	pod                        *corev1.Pod
	container                  string
	command                    []string
	stdin, stdout, stderr, tty bool
	// attach: connect to the container's running process instead of
	// running command.
	attach bool
}

// AttachContainer implements the kubelet's remotecommand.Attacher.
func (x *executor) AttachContainer(ctx context.Context, _ string, _ types.UID, _ string, in io.Reader,
	out, errw io.WriteCloser, _ bool, resize <-chan remotecommand.TerminalSize) error {
	return x.run(ctx, in, out, errw, resize)
}

// ExecInContainer implements the kubelet's remotecommand.Executor. The
// streams it gets may be nil, or (WebSocket) present but not asked for: the
// request's flags decide.
func (x *executor) ExecInContainer(ctx context.Context, _ string, _ types.UID, _ string, _ []string, in io.Reader,
	out, errw io.WriteCloser, _ bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	return x.run(ctx, in, out, errw, resize)
}

func (x *executor) run(ctx context.Context, in io.Reader, out, errw io.Writer, resize <-chan remotecommand.TerminalSize) error {
	var st streams.ExecStreams
	if x.stdin {
		st.Stdin = in
	}
	if x.stdout {
		st.Stdout = out
	}
	if x.stderr {
		st.Stderr = errw
	}
	if x.tty && resize != nil {
		sizes := make(chan streams.TerminalSize)
		go func() {
			for sz := range resize { // closed when the connection ends
				select {
				case sizes <- streams.TerminalSize{Width: sz.Width, Height: sz.Height}:
				case <-ctx.Done():
					return
				}
			}
		}()
		st.Resize = sizes
	}
	if x.attach {
		return x.c.Attach(ctx, x.pod.Spec.NodeName, streams.AttachRequest{Namespace: x.pod.Namespace, Pod: x.pod.Name,
			UID: string(x.pod.UID), Container: x.container, Stdin: x.stdin, TTY: x.tty}, st)
	}
	req := streams.ExecRequest{Namespace: x.pod.Namespace, Pod: x.pod.Name, UID: string(x.pod.UID), Container: x.container,
		Command: x.command, Stdin: x.stdin, TTY: x.tty}
	code, err := x.c.Exec(ctx, x.pod.Spec.NodeName, req, st)
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
	}
	return nil
}

// execV5 serves the v5.channel.k8s.io WebSocket protocol, kubectl's first
// choice since 1.30, as the Kubernetes API server does (its stream
// translator): binary messages of [channel][data]; 0 stdin, 1 stdout, 2
// stderr, 3 the final Status, 4 resize; [255][channel] closes a channel
// (stdin's end).
func (h *handlers) execV5(w http.ResponseWriter, r *http.Request, x *executor) {
	channels := []wsstream.ChannelType{wsstream.IgnoreChannel, wsstream.IgnoreChannel, wsstream.IgnoreChannel,
		wsstream.WriteChannel, wsstream.ReadChannel}
	if x.stdin {
		channels[0] = wsstream.ReadChannel
	}
	if x.stdout {
		channels[1] = wsstream.WriteChannel
	}
	if x.stderr {
		channels[2] = wsstream.WriteChannel
	}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		rcconst.StreamProtocolV5Name: {Binary: true, Channels: channels},
	})
	conn.SetIdleTimeout(idleTimeout)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		h.log.Debug("streams: exec websocket upgrade failed", "err", err) // answered by the library
		return
	}
	defer conn.Close()
	// An empty message on the first output channel tells the client the
	// streams are ready, as the API server does.
	first := rcconst.StreamErr
	switch {
	case x.stdout:
		first = rcconst.StreamStdOut
	case x.stderr:
		first = rcconst.StreamStdErr
	}
	if _, err := streams[first].Write([]byte{}); err != nil {
		return
	}
	var resize chan remotecommand.TerminalSize
	if x.tty {
		resize = make(chan remotecommand.TerminalSize)
		go func() {
			defer close(resize)
			dec := json.NewDecoder(streams[rcconst.StreamResize])
			for {
				var sz remotecommand.TerminalSize
				if dec.Decode(&sz) != nil {
					return
				}
				select {
				case resize <- sz:
				case <-r.Context().Done():
					return
				}
			}
		}()
	}
	err = x.run(r.Context(), streams[rcconst.StreamStdIn], streams[rcconst.StreamStdOut], streams[rcconst.StreamStdErr], resize)
	st := metav1.Status{Status: metav1.StatusSuccess}
	var exit utilexec.CodeExitError
	switch {
	case errors.As(err, &exit):
		st = metav1.Status{Status: metav1.StatusFailure, Reason: rcconst.NonZeroExitCodeReason,
			Message: fmt.Sprintf("command terminated with non-zero exit code: %v", exit),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: rcconst.ExitCodeCauseType,
				Message: fmt.Sprint(exit.Code)}}}}
	case err != nil:
		st = status(err, x.pod, x.container).(apierrors.APIStatus).Status()
	}
	b, err := json.Marshal(st)
	if err != nil {
		return
	}
	conn.SetWriteDeadline(10 * time.Second)
	_, _ = streams[rcconst.StreamErr].Write(b)
}
