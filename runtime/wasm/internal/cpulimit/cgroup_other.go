//go:build !linux

package cpulimit

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"time"
)

// Measured reports whether threads' CPU clocks can be read here: not on
// this platform, where a Meter reads 0.
const Measured = false

var errNoClock = errors.New("cpulimit: no per-thread CPU clocks on this platform")

func gettid() int                                { return 0 }
func isMainThread() bool                         { return false }
func selfClock() (time.Duration, error)          { return 0, errNoClock }
func threadClock(tid int) (time.Duration, error) { return 0, errNoClock }

// DefaultPeriod is the CFS period where there is one (Linux).
const DefaultPeriod = 10 * time.Millisecond

// Controller exists on Linux only.
type Controller struct{}

// NewController says why CPU limits cannot be held here.
func NewController(opts Options) (*Controller, error) {
	return nil, fmt.Errorf("%w (%s)", ErrUnsupported, goruntime.GOOS)
}

func (c *Controller) Dir() string                           { return "" }
func (c *Controller) Close() error                          { return nil }
func (c *Controller) NewGroup(millis int64) (*Group, error) { return nil, ErrUnsupported }

// Group exists on Linux only.
type Group struct {
	Millis int64
	Period time.Duration
}

// Stats are a group's throttling counters.
type Stats struct {
	Periods, Throttled int64
	ThrottledTime      time.Duration
}

func (g *Group) join() error           { return ErrUnsupported }
func (g *Group) addsProcs() bool       { return false }
func (g *Group) Dir() string           { return "" }
func (g *Group) Stats() (Stats, error) { return Stats{}, ErrUnsupported }
func (g *Group) Close() error          { return nil }
