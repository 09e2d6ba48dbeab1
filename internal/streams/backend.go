package streams

import (
	"context"
	"errors"
	"io"

	corev1 "k8s.io/api/core/v1"
)

// Backend is what a node agent implements so that the streaming pod
// subresources reach its pods: the runtime side of the relay. ServeNode calls
// it, one call per kubectl stream (one per forwarded TCP connection for
// port-forward), each on its own goroutine; calls may run concurrently.
//
// Every call gets a ctx that ends when the API side goes away (kubectl
// exits, the relay times out an unresponsive peer, or ServeNode is stopped);
// a Backend must return soon after. Writers and readers handed to a call are
// only valid until it returns. Writes block while the client is slower than
// the Backend (flow control); they fail once ctx ends, so a Backend blocked in
// a Write is released too.
//
// The error's text reaches the user. Return the sentinel errors below where
// they apply, bare or as fmt.Errorf("%w: <message for the user>", sentinel):
// the API answers them with 400 Bad Request and the message (without the
// sentinel's own words in front), or, for a bare sentinel, the message
// Kubernetes gives for that case. Any other error is a 500 for logs, and
// "Internal error occurred" on kubectl's terminal for exec.
type Backend interface {
	// Logs writes the container's log to w as req.Options ask: Follow
	// (keep writing until the container ends or ctx ends), Previous (the
	// last terminated instance: ErrNoPrevious if there is none), TailLines,
	// SinceSeconds or SinceTime, Timestamps (an RFC3339Nano timestamp and a
	// space before each line). LimitBytes may be ignored: the relay cuts
	// the stream there itself. Returns when the log is written (without
	// Follow), the container ended (with Follow) or ctx ends.
	Logs(ctx context.Context, req LogRequest, w io.Writer) error
	// Exec runs req.Command in the container with the given streams and
	// returns its exit code once it exited and its output was written.
	// A command that ran and exited non-zero is (code, nil); err is for a
	// command that could not be run at all.
	Exec(ctx context.Context, req ExecRequest, s ExecStreams) (exitCode int, err error)
	// PortForward connects conn to req.Port of the pod and copies both ways.
	// conn.Read returns io.EOF when the client has sent everything (a half
	// close: keep sending the pod's answer). Return once the pod's side is
	// done (its connection reached EOF): kubectl closes the client's
	// connection only after that, so waiting for the client's EOF as well
	// would wait for nothing; the relay cancels a call still running a
	// moment after conn.Close. An error is shown to the user (kubectl
	// prints it and closes that connection).
	PortForward(ctx context.Context, req PortForwardRequest, conn io.ReadWriteCloser) error
}

// Attacher is implemented by a Backend that serves pods/attach: kubectl
// attach to a running container's standard streams. ServeNode answers an
// attach to a Backend without it with an error the user sees.
type Attacher interface {
	// Attach connects s to the container's process: its output from now
	// on to s.Stdout and s.Stderr, and s.Stdin (when set) to its input,
	// for a container whose spec asked for stdin. It returns when the
	// container's process ends or ctx ends (the client detached).
	Attach(ctx context.Context, req AttachRequest, s ExecStreams) error
}

// AttachRequest names the container to attach to.
type AttachRequest struct {
	Namespace, Pod, UID string
	// Container is always set: the API resolved the default already.
	Container string
	// Stdin: ExecStreams.Stdin is set. TTY: the client wants a terminal
	// (one output stream, and sizes on ExecStreams.Resize).
	Stdin, TTY bool
}

// LogRequest names the container whose log to write and how.
type LogRequest struct {
	Namespace, Pod, UID string
	// Container is always set: the API resolved the default already.
	Container string
	// Options are kubectl's: follow, previous, tailLines, sinceSeconds or
	// sinceTime (never both), timestamps, limitBytes. Container is repeated
	// in Options.Container.
	Options corev1.PodLogOptions
}

// ExecRequest names the container to run Command in.
type ExecRequest struct {
	Namespace, Pod, UID string
	// Container is always set: the API resolved the default already.
	Container string
	// Command is argv; never empty.
	Command []string
	// Stdin: ExecStreams.Stdin is set. TTY: the client wants a terminal;
	// stdout and stderr are then one stream (ExecStreams.Stderr is nil)
	// and ExecStreams.Resize carries the terminal's size.
	Stdin, TTY bool
}

// ExecStreams are an exec's standard streams. A stream the client did not
// ask for is nil.
type ExecStreams struct {
	// Stdin returns io.EOF when the client closed its input (kubectl
	// exec -i with its stdin at end).
	Stdin io.Reader
	// Stdout and Stderr are the client's terminal. Writes block while the
	// client is slow.
	Stdout, Stderr io.Writer
	// Resize carries terminal size changes (TTY only; nil otherwise). It
	// is never closed: stop reading when ctx ends. Only the latest sizes are
	// kept if the Backend does not read it.
	Resize <-chan TerminalSize
}

// TerminalSize is a terminal's size in characters.
type TerminalSize struct {
	Width  uint16 `json:"width"`
	Height uint16 `json:"height"`
}

// PortForwardRequest names the pod port to connect to.
type PortForwardRequest struct {
	Namespace, Pod, UID string
	Port                int32
}

// Errors a Backend returns for the cases the API answers 400 Bad Request, as
// Kubernetes does. They travel over the bus by name, so errors.Is holds on
// the API side too. Each doc line says what the user is told for the bare
// sentinel.
var (
	// ErrNoPrevious: logs --previous, but the container has no terminated
	// instance. `previous terminated container "c" in pod "p" not found`.
	ErrNoPrevious = errors.New("previous terminated container not found")
	// ErrContainerNotFound: the node runs the pod but has no such container
	// (not started yet, or not part of the pod as the node knows it).
	// `container "c" in pod "p" is not available`.
	ErrContainerNotFound = errors.New("container not available")
	// ErrPodNotRunning: the node does not run the pod (not started yet,
	// already gone, or another pod of that name).
	// `pod "p" is not running on node "n"`.
	ErrPodNotRunning = errors.New("pod not running")
)

// Errors of the relay itself, returned by Client (the API side) and shown to
// the user by the HTTP handlers. Each doc line says what the caller may
// conclude.
var (
	// ErrNodeUnreachable: no stream server answers for the node (its agent
	// is not connected, or runs no ServeNode). Nothing was started; the API
	// answers 503.
	ErrNodeUnreachable = errors.New("node unreachable")
	// ErrNodeTimeout: the node's stream server did not answer an open in
	// time. Nothing is known to have started (a late start is cancelled by
	// the node's idle timeout); the API answers 504.
	ErrNodeTimeout = errors.New("node did not answer")
	// ErrSessionLost: a stream stopped half way: the peer fell silent for
	// longer than the idle timeout, frames were lost (a bus reconnect), or
	// the peer broke the protocol. Output may be cut short.
	ErrSessionLost = errors.New("stream session lost")
)
