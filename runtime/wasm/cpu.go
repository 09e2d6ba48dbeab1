package wasm

import (
	"fmt"
	"sync"
	"time"

	"github.com/skiffhq/skiff/runtime/wasm/internal/cpulimit"
)

// CPU is a container's CPU: the limit its guests are held to and the CPU
// time they used. Runs and Handler instances given the same CPU share both,
// as the processes of one container share its cgroup. Make one with
// Runtime.NewCPU and Close it once nothing runs on it.
//
// How: each guest call runs on an OS thread locked to it, whose CPU clock
// the kernel keeps (nanoseconds), so CPU time is measured without privilege.
// With a limit, and where the engine may (root and the cgroup v1 cpu
// controller; see Runtime.CPULimits), the thread is put in a cgroup of its
// own with a CFS bandwidth quota of the limit, and ends with the call: Go
// cannot preempt a guest's native code for long, the kernel can. See
// package runtime/wasm/internal/cpulimit and docs/rationale.md for the
// measured precision and side effects.
type CPU struct {
	r      *Runtime
	limit  int64
	group  *cpulimit.Group // nil without a limit or where it is not enforced
	reason string          // why a limit is not enforced
	meter  cpulimit.Meter
}

// cpuState is the Runtime's CPU limiter, made at the first use.
type cpuState struct {
	once sync.Once
	ctl  *cpulimit.Controller // nil where limits are not enforced
	why  string

	keepProcs bool // Config.KeepGOMAXPROCS
}

func (r *Runtime) cpuController() (*cpulimit.Controller, string) {
	r.cpu.once.Do(func() {
		ctl, err := cpulimit.NewController(cpulimit.Options{KeepGOMAXPROCS: r.cpu.keepProcs})
		if err != nil {
			r.cpu.why = err.Error()
			r.log.Info("CPU limits not enforced", "reason", r.cpu.why)
			return
		}
		r.cpu.ctl = ctl
		r.log.Debug("CPU limits enforced", "cgroup", ctl.Dir())
	})
	return r.cpu.ctl, r.cpu.why
}

// closeCPU removes the Runtime's cgroups (Close, after every Run ended).
func (r *Runtime) closeCPU() error {
	r.cpu.once.Do(func() { r.cpu.why = "runtime closed" }) // never make one now
	if r.cpu.ctl == nil {
		return nil
	}
	if err := r.cpu.ctl.Close(); err != nil {
		return fmt.Errorf("wasm: remove CPU cgroups: %w", err)
	}
	return nil
}

// CPULimits reports whether this Runtime holds guests to a CPU limit on
// this host, and if not, why (no cgroup cpu controller, no privilege to
// use it, not Linux...). CPU time is measured either way.
func (r *Runtime) CPULimits() (enforced bool, reason string) {
	ctl, why := r.cpuController()
	return ctl != nil, why
}

// CPUTimeMeasured reports whether CPU.Usage measures on this platform
// (Linux's per-thread CPU clocks); elsewhere it reads 0.
func CPUTimeMeasured() bool { return cpulimit.Measured }

// NewCPU returns a CPU limited to limitMillis thousandths of a core (100 is
// `limits.cpu: 100m`); 0 means no limit. Where a limit cannot be held (see
// CPULimits, or when the cgroup cannot be made) the CPU still measures, and
// Enforced says why it does not limit.
func (r *Runtime) NewCPU(limitMillis int64) *CPU {
	c := &CPU{r: r, limit: max(limitMillis, 0)}
	if c.limit == 0 {
		return c
	}
	ctl, why := r.cpuController()
	if ctl == nil {
		c.reason = why
		return c
	}
	g, err := ctl.NewGroup(c.limit)
	if err != nil {
		c.reason = err.Error()
		r.log.Warn("CPU limit not enforced", "limit_millis", c.limit, "err", err)
		return c
	}
	c.group = g
	return c
}

// LimitMillis is the limit in thousandths of a core; 0 for none.
func (c *CPU) LimitMillis() int64 { return c.limit }

// Enforced reports whether the limit is held; reason says why not when a
// limit was asked for.
func (c *CPU) Enforced() (enforced bool, reason string) { return c.group != nil, c.reason }

// Usage is the CPU time the guests of this CPU used so far, the calls in
// progress included; 0 where it is not measured (CPUTimeMeasured).
func (c *CPU) Usage() time.Duration { return c.meter.Usage() }

// Period is the CFS period the limit is enforced over (0 when not
// enforced): over any window of whole periods, the guests get at most the
// limit's share of it.
func (c *CPU) Period() time.Duration {
	if c.group == nil {
		return 0
	}
	return c.group.Period
}

// Close removes the CPU's cgroup. Usage still answers afterwards.
func (c *CPU) Close() error {
	if c.group == nil {
		return nil
	}
	if err := c.group.Close(); err != nil {
		return fmt.Errorf("wasm: %w", err)
	}
	return nil
}

// run calls fn, a guest call that may run long (a command's _start), on a
// thread of this CPU: a thread of its own in the CPU's cgroup when the
// limit is enforced, the caller's, metered, otherwise.
func (c *CPU) run(fn func()) {
	if c == nil {
		fn()
		return
	}
	if c.group == nil {
		c.meter.Run(fn)
		return
	}
	t, err := cpulimit.StartThread(c.group, &c.meter)
	if err != nil {
		// Degrade rather than fail the run: measured, not limited.
		c.r.log.Warn("CPU limit not enforced for a run", "limit_millis", c.limit, "err", err)
		c.meter.Run(fn)
		return
	}
	defer t.Stop()
	t.Do(fn)
}

// guestThread is where one handler instance's calls run: the instance's
// own thread in the CPU's cgroup when the limit is enforced (joining a
// cgroup costs ~0.2 ms, too much per request), the caller's otherwise.
type guestThread struct {
	cpu *CPU
	t   *cpulimit.Thread
}

func (c *CPU) newGuestThread() guestThread {
	if c == nil || c.group == nil {
		return guestThread{cpu: c}
	}
	t, err := cpulimit.StartThread(c.group, &c.meter)
	if err != nil {
		c.r.log.Warn("CPU limit not enforced for an instance", "limit_millis", c.limit, "err", err)
		return guestThread{cpu: c}
	}
	return guestThread{cpu: c, t: t}
}

// do runs fn on the thread.
func (g guestThread) do(fn func()) {
	switch {
	case g.t != nil:
		g.t.Do(fn)
	case g.cpu != nil:
		g.cpu.meter.Run(fn)
	default:
		fn()
	}
}

// stop ends the instance's thread.
func (g guestThread) stop() {
	if g.t != nil {
		g.t.Stop()
	}
}
