package streams

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Kinds of session.
const (
	kindProbe       = "probe" // no session: is anyone serving this node?
	kindLogs        = "logs"
	kindExec        = "exec"
	kindPortForward = "portforward"
	kindAttach      = "attach"
)

// openRequest asks a node to start one Backend call. The API side has
// subscribed to Inbox before sending it.
type openRequest struct {
	Kind  string `json:"kind"`
	Inbox string `json:"inbox,omitempty"`
	// Window is how many bytes per channel the API side buffers: the node
	// may send that much on each channel before it is granted more.
	Window int          `json:"window,omitempty"`
	Logs   *LogRequest  `json:"logs,omitempty"`
	Exec   *ExecRequest `json:"exec,omitempty"`
	// Stdout and Stderr say which of an exec's output streams the client
	// asked for (one not asked for is nil in ExecStreams).
	Stdout      bool                `json:"stdout,omitempty"`
	Stderr      bool                `json:"stderr,omitempty"`
	PortForward *PortForwardRequest `json:"portForward,omitempty"`
	Attach      *AttachRequest      `json:"attach,omitempty"`
}

// openReply answers an openRequest: the node's inbox for the session (it
// subscribed before answering) and its own receive window.
type openReply struct {
	Inbox  string `json:"inbox,omitempty"`
	Window int    `json:"window,omitempty"`
}

// endMsg ends a session (node to API): the Backend call returned.
type endMsg struct {
	ExitCode int `json:"exitCode,omitempty"`
	// Reason names a sentinel error (reasonNoPrevious, …) or is empty.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Reasons in endMsg.
var reasons = map[string]error{
	"NoPrevious":        ErrNoPrevious,
	"ContainerNotFound": ErrContainerNotFound,
	"PodNotRunning":     ErrPodNotRunning,
}

func endFor(exitCode int, err error) endMsg {
	m := endMsg{ExitCode: exitCode}
	if err == nil {
		return m
	}
	m.Message = err.Error()
	for r, sentinel := range reasons {
		if errors.Is(err, sentinel) {
			m.Reason = r
		}
	}
	return m
}

// remoteError is a Backend's error as the API side sees it: its text, and
// the sentinel it wrapped.
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

func (m endMsg) err() error {
	if m.Message == "" && m.Reason == "" {
		return nil
	}
	return &remoteError{sentinel: reasons[m.Reason], msg: m.Message}
}

// A frame is one NATS message of a session: a 10-byte header, then the
// payload. Seq numbers every frame a side sends, from 1; a receiver that
// sees a gap (frames lost across a bus reconnect) ends the session rather
// than deliver corrupted output.
//
//	byte 0     type
//	byte 1     channel (data, credit, eof)
//	bytes 2-9  seq, big endian
type frameType byte

const (
	frameData   frameType = iota + 1 // payload: bytes on a channel
	frameCredit                      // payload: uint32, more bytes the sender may send on the channel
	frameEOF                         // the sender will send nothing more on the channel
	frameResize                      // payload: JSON TerminalSize (API to node)
	frameEnd                         // payload: JSON endMsg (node to API)
	frameCancel                      // the API side is gone; stop (API to node)
	framePing                        // keepalive
)

const headerLen = 10

// Channels, numbered as Kubernetes' remote command protocol numbers them.
const (
	chStdin  = 0 // exec stdin; port-forward client to pod
	chStdout = 1 // logs; exec stdout; port-forward pod to client
	chStderr = 2 // exec stderr
	numCh    = 3
)

func encodeFrame(t frameType, ch byte, seq uint64, payload []byte) []byte {
	b := make([]byte, headerLen+len(payload))
	b[0], b[1] = byte(t), ch
	binary.BigEndian.PutUint64(b[2:], seq)
	copy(b[headerLen:], payload)
	return b
}

func decodeFrame(b []byte) (t frameType, ch byte, seq uint64, payload []byte, err error) {
	if len(b) < headerLen {
		return 0, 0, 0, nil, fmt.Errorf("%w: frame of %d bytes", ErrSessionLost, len(b))
	}
	return frameType(b[0]), b[1], binary.BigEndian.Uint64(b[2:]), b[headerLen:], nil
}

// timing holds the relay's time and size limits. Tests shorten them.
type timing struct {
	// open bounds the wait for a node's answer to an open or a probe.
	open time.Duration
	// ping is how often a side says it is alive; idle is how long a side
	// waits without hearing anything before it ends the session.
	ping, idle time.Duration
	// linger is how long a port-forward waits for the node's call to end
	// after the pod closed its side of the connection.
	linger time.Duration
	// window is the bytes a receiver buffers per channel (and so the most
	// a sender has in flight per channel); chunk is the largest data frame,
	// well under NATS' 1 MiB payload limit.
	window, chunk int
}

var defaultTiming = timing{
	open:   5 * time.Second,
	ping:   5 * time.Second,
	idle:   30 * time.Second,
	linger: time.Second,
	window: 256 << 10,
	chunk:  32 << 10,
}
