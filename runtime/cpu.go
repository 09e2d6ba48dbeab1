package runtime

import "time"

// CPULimiter is implemented by a Runtime that can say whether it holds
// containers to their `resources.limits.cpu` on this node. A Runtime that
// does not implement it is taken not to.
type CPULimiter interface {
	// CPULimitEnforced reports whether CPU limits are held here, and if
	// not, why (for the node's condition and the pods' events).
	CPULimitEnforced() (enforced bool, reason string)
}

// CPUMeter is implemented by a Process whose runtime measures its CPU
// time: for `kubectl top` and autoscaling.
type CPUMeter interface {
	// CPUUsage is the CPU time (user and system) the process used since it
	// started, execs into its container included; it never decreases, and
	// keeps its last value once the process has ended.
	CPUUsage() time.Duration
}

// RequestCounter is implemented by a Process whose runtime serves HTTP for
// the workload (a Wasm SDK handler module: the host owns the listener) and
// so can count the requests it serves, for a requests-per-second metric.
// A process that serves its own sockets cannot be counted without reading
// its traffic, so it does not implement it.
type RequestCounter interface {
	// HTTPRequests is the number of HTTP requests the process was handed
	// since it started, whatever their answer; it never decreases.
	HTTPRequests() uint64
}
