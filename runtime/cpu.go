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
