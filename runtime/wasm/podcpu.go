package wasm

import (
	"sync"
	"time"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

var (
	_ skiffrt.CPULimiter = (*PodRuntime)(nil)
	_ skiffrt.CPUMeter   = (*commandProcess)(nil)
	_ skiffrt.CPUMeter   = (*handlerProcess)(nil)

	_ skiffrt.RequestCounter = (*handlerProcess)(nil)
)

// CPULimitEnforced reports whether containers are held to limits.cpu on
// this node, and if not, why (Runtime.CPULimits).
func (p *PodRuntime) CPULimitEnforced() (bool, string) { return p.rt.CPULimits() }

// podCPUs are the CPUs of a PodRuntime's containers by container ID: a
// container's process and its execs (kubectl exec, exec probes) share one,
// limit and CPU time, as a container's processes share its cgroup.
type podCPUs struct {
	mu   sync.Mutex
	byID map[string]*podCPU
}

type podCPU struct {
	cpu  *CPU
	refs int
}

// acquireCPU returns the CPU of the container spec.ID, made with spec's
// limit if the container has none yet, and the function to call when the
// caller no longer runs on it; the last release closes it.
func (p *PodRuntime) acquireCPU(spec skiffrt.ContainerSpec) (*CPU, func()) {
	if spec.ID == "" {
		cpu := p.rt.NewCPU(spec.CPULimitMillis)
		return cpu, func() { p.closeCPU(cpu) }
	}
	p.cpus.mu.Lock()
	defer p.cpus.mu.Unlock()
	if p.cpus.byID == nil {
		p.cpus.byID = map[string]*podCPU{}
	}
	e := p.cpus.byID[spec.ID]
	if e == nil {
		e = &podCPU{cpu: p.rt.NewCPU(spec.CPULimitMillis)}
		p.cpus.byID[spec.ID] = e
	}
	e.refs++
	var once sync.Once
	return e.cpu, func() {
		once.Do(func() {
			p.cpus.mu.Lock()
			e.refs--
			last := e.refs == 0
			if last {
				delete(p.cpus.byID, spec.ID)
			}
			p.cpus.mu.Unlock()
			if last {
				p.closeCPU(e.cpu)
			}
		})
	}
}

func (p *PodRuntime) closeCPU(cpu *CPU) {
	if err := cpu.Close(); err != nil {
		p.rt.log.Warn("CPU cgroup not removed", "err", err)
	}
}

// CPUUsage is the CPU time of the command and of the execs into its
// container so far.
func (c *commandProcess) CPUUsage() time.Duration { return c.cpu.Usage() }

// CPUUsage is the CPU time of the handler's instances and of the execs
// into its container so far.
func (hp *handlerProcess) CPUUsage() time.Duration { return hp.cpu.Usage() }

// HTTPRequests is the number of requests the handler was handed so far.
func (hp *handlerProcess) HTTPRequests() uint64 { return hp.h.requests.Load() }
