package runtime

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Runtime runs containers of one kind (Wasm modules, OCI containers).
// Every method is safe for concurrent use.
type Runtime interface {
	// Name is the RuntimeClass handler it serves ("wasm").
	Name() string
	// Version is reported as the node's container runtime version
	// ("wazero://v1.12.0").
	Version() string
	// Pull makes image available on this node, following policy as a
	// kubelet does, with secrets as the pod's imagePullSecrets. Errors wrap
	// ErrImageNotFound, ErrImageUnauthorized, ErrImageNotPresent or
	// ErrImageNotSupported when they are one of those.
	Pull(ctx context.Context, image string, policy corev1.PullPolicy, secrets []corev1.Secret) (Image, error)
	// Start starts a container's main process and returns once it runs. The
	// process lives until it exits or Stop; ctx bounds only the start.
	Start(ctx context.Context, img Image, spec ContainerSpec) (Process, error)
	// Exec runs a new process in a container's environment (its image,
	// env, mounts and limits, with spec.Args as argv) and waits for it,
	// or for ctx.
	Exec(ctx context.Context, img Image, spec ContainerSpec) (ExitStatus, error)
	// Close stops every process and releases the runtime.
	Close(ctx context.Context) error
}

// Image is a pulled image.
type Image struct {
	// Ref is the reference it was pulled by, normalised
	// ("registry.skiff.local/hello:1").
	Ref string
	// ID is the content digest kubectl shows as imageID ("sha256:…").
	ID string
	// Size in bytes of what the node stored.
	Size int64
	// Pulled is false when nothing had to be fetched (already present).
	Pulled bool
	// Entrypoint and Cmd come from the image config: argv when the
	// container sets no command or args, as for a container image.
	Entrypoint, Cmd []string
	// Env is the image config's environment ("K=V"), under the container's.
	Env []string
}

// ContainerSpec is a container as the runtime sees it: everything the pod
// spec says, resolved by the agent (env values, volume directories, the pod
// IP).
type ContainerSpec struct {
	// ID is unique per start of a container on this node; it is the
	// containerID kubectl shows after the runtime's scheme.
	ID string
	// Args is argv, Args[0] the program name.
	Args []string
	// Env is the environ as "KEY=VALUE".
	Env []string
	// Mounts are host directories the process sees at their guest paths.
	Mounts []Mount
	// Ports are TCP ports the process serves on the pod IP.
	Ports []Port
	// PodIP is the address Ports are opened on.
	PodIP string
	// MemoryLimitBytes caps the process's memory; 0 means no limit.
	MemoryLimitBytes int64
	// Hostname is the pod's host name.
	Hostname string
	// Stdin, when set, is the process's standard input.
	Stdin io.Reader
	// Stdout and Stderr receive the process's output; nil discards it.
	Stdout, Stderr io.Writer
	// TTY asks for a terminal: Stdin, Stdout and Stderr become one
	// terminal device the process sees as such (isatty), in Exec. A runtime
	// that cannot make one runs the process with plain streams.
	TTY bool
	// Resize carries the terminal's size changes when TTY is set; nil when
	// the client sends none.
	Resize <-chan TerminalSize
	// OnInstanceExit, when set, is called each time a runtime that serves
	// a container from several instances (the Wasm runtime's SDK handler
	// pools) replaced one that failed, with how it ended: for the agent, a
	// container restart the process survived.
	OnInstanceExit func(ExitStatus)
	// CPULimitMillis caps the process's CPU in thousandths of a core
	// (`limits.cpu: 100m` is 100); 0 means no limit. See CPULimiter.
	CPULimitMillis int64
	// DNS is how the container resolves names, as the agent wrote it into
	// the container's /etc/resolv.conf (dnsPolicy and dnsConfig applied): a
	// runtime that resolves for the guest (the Wasm runtime's
	// sock_getaddrinfo) asks these servers with these search domains. Nil:
	// the node's resolver.
	DNS *DNSConfig
	// Firewall, when set, decides which connections the container's
	// sockets may make and take (the NetworkPolicies that select the pod).
	// A runtime that owns its containers' sockets (Wasm) asks it for every
	// new connection; nil allows everything.
	Firewall Firewall
	// App, when set, is the messaging and key-value services the guest may
	// use (see AppServices), scoped to the pod's namespace. Nil: the
	// runtime offers none, and says so to a guest that asks.
	App AppServices
}

// DNSConfig is a container's resolver configuration, the content of its
// /etc/resolv.conf.
type DNSConfig struct {
	// Nameservers are IP addresses (port 53).
	Nameservers []string
	// Searches are the search domains, in order.
	Searches []string
	// Ndots is options ndots: names with fewer dots are tried with the
	// search domains first.
	Ndots int
}

// Direction is which way a connection goes, seen from the pod.
type Direction int

const (
	// Ingress: a peer connects to (or sends to) the pod.
	Ingress Direction = iota
	// Egress: the pod connects to (or sends to) a peer.
	Egress
)

// Protocol is a transport protocol as NetworkPolicy names it.
type Protocol string

const (
	TCP Protocol = "TCP"
	UDP Protocol = "UDP"
)

// Firewall decides, connection by connection, what a pod may reach and
// what may reach it. It is consulted when a connection is made (connect,
// accept, the first datagram to or from a peer), so a change of policy
// applies to new connections; established ones keep going, as with
// Kubernetes' network plugins. Safe for concurrent use.
type Firewall interface {
	// Allow reports whether a connection may be made. For Ingress, peer is
	// the remote end and port the pod's own port it reaches; for Egress,
	// peer is the destination (its port is the one policies' ports match)
	// and port is 0.
	Allow(dir Direction, proto Protocol, peer netip.AddrPort, port uint16) bool
}

// TerminalSize is a terminal's size in characters.
type TerminalSize struct{ Width, Height uint16 }

// Mount is a host directory shown to the process at GuestPath.
type Mount struct {
	HostPath, GuestPath string
	ReadOnly            bool
	// Quota, when set, bounds what the process may store through this
	// mount: a change that would take the directory past it fails with
	// ENOSPC ("no space left on device") and writes nothing past it. The
	// agent sets it for emptyDir volumes (sizeLimit, and the pod's
	// ephemeral-storage limit). Nil: only the node's disk bounds it.
	Quota DiskQuota
	// NodeFiles marks a directory the platform adds to every container
	// rather than one of the pod's own volumes: the node's files
	// (resolv.conf, hosts, hostname) mounted at /etc, and the ServiceAccount
	// token volume the API server adds. The Wasm runtime pre-opens these
	// after the container's listeners, so that listeners keep the place
	// wazero gives them, right after the pod's volumes (fd 3 when there are
	// none).
	NodeFiles bool
}

// Port is one TCP port of a container.
type Port struct {
	Name string
	Port int32
}

// Process is a started container process.
type Process interface {
	// Done is closed when the process has ended.
	Done() <-chan struct{}
	// Status is how it ended; valid once Done is closed.
	Status() ExitStatus
	// Stop asks the process to end and waits for it: the runtime's polite
	// signal first (closing its listeners and input), then, after grace, a
	// kill. It returns once Done is closed or ctx ends.
	Stop(ctx context.Context, grace time.Duration) ExitStatus
}

// MemoryUser is implemented by a Process that can say how much memory it
// holds: the node agent ranks pods for eviction under memory pressure by
// how far their use exceeds their request.
type MemoryUser interface {
	// MemoryBytes is the memory the process holds now, in bytes (for a
	// Wasm process, the linear memory of its live instances).
	MemoryBytes() int64
}

// ExitStatus is how a process ended, in the terms of a terminated
// container.
type ExitStatus struct {
	Code    int
	Reason  string // Completed, Error, OOMKilled, Killed
	Message string
}

// Errors a Pull wraps, so the agent can report the Kubernetes reasons.
var (
	// ErrImageNotFound: the registry has no such image (ErrImagePull).
	ErrImageNotFound = errors.New("image not found")
	// ErrImageUnauthorized: the registry refused the credentials.
	ErrImageUnauthorized = errors.New("image pull unauthorized")
	// ErrImageNotPresent: policy Never and the image is not on the node
	// (ErrImageNeverPull).
	ErrImageNotPresent = errors.New("image not present with pull policy Never")
	// ErrImageNotSupported: the image is not for this runtime (an OCI
	// container image given to the Wasm runtime).
	ErrImageNotSupported = errors.New("image not supported by this runtime")
)

// ErrPortUnavailable: Start could not listen on a container port at the
// pod IP (the address is in use, or not this host's). Nothing ran; the
// same spec may work once the address is free. The agent says so in the
// container's state and a Warning event.
var ErrPortUnavailable = errors.New("container port unavailable")

// ErrCannotExec: Exec cannot run a process from this image (a Wasm
// module that is an SDK handler has no entry point to run as a command).
// The agent reports it as a shell does, exit code 126.
var ErrCannotExec = errors.New("cannot run a command from this image")

// ProgramFinder is implemented by a Runtime whose images may hold programs
// of their own besides the one they run (an OCI image's file system holds
// a shell, tar, …). The node agent runs a few programs itself on a
// container's volumes when its image has none (tar and test, for kubectl
// cp); a Runtime that does not implement ProgramFinder has images that hold
// no other programs, as a Wasm module does.
type ProgramFinder interface {
	// HasProgram reports whether img holds a program of that name
	// ("tar"), which Exec would run for an argv naming it.
	HasProgram(img Image, name string) bool
}
