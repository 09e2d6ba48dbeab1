package agent

import (
	"testing"
	"time"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// counted is a process whose runtime measures CPU and counts requests.
type counted struct {
	skiffrt.Process
	cpu  time.Duration
	reqs uint64
}

func (c *counted) CPUUsage() time.Duration { return c.cpu }
func (c *counted) HTTPRequests() uint64    { return c.reqs }

// measured is a process whose runtime measures CPU only (a command module
// serving its own sockets).
type measured struct {
	skiffrt.Process
	cpu time.Duration
}

func (m *measured) CPUUsage() time.Duration { return m.cpu }

// TestContainerRequestsAcrossRestarts: a container's served requests add up
// across its starts, as its CPU time does, so the control plane's rate does
// not drop to nothing (or go negative) when it restarts; a container whose
// runtime never counted requests says so instead of reporting 0.
func TestContainerRequestsAcrossRestarts(t *testing.T) {
	var cc containerCPU
	if _, ok := cc.httpRequests(); ok {
		t.Error("a container never started has a request count")
	}
	first := &counted{cpu: time.Second, reqs: 40}
	cc.started(first)
	first.reqs = 70
	if n, ok := cc.httpRequests(); !ok || n != 70 {
		t.Errorf("first start: %d, %v; want 70", n, ok)
	}
	cc.ended()
	second := &counted{cpu: time.Second, reqs: 5}
	cc.started(second)
	if n, ok := cc.httpRequests(); !ok || n != 75 {
		t.Errorf("second start: %d, %v; want 75", n, ok)
	}
	if u := cc.usage(); u != 2*time.Second {
		t.Errorf("CPU %v, want 2s", u)
	}

	var cmd containerCPU
	cmd.started(&measured{cpu: time.Second})
	if _, ok := cmd.httpRequests(); ok {
		t.Error("a command module's container has a request count")
	}
}
