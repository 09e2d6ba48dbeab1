package wasisock

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// poll_oneoff's layout: a subscription is 48 bytes, an event 32.
const (
	subscriptionSize = 48
	eventSize        = 32

	eventtypeClock   = 0
	eventtypeFdRead  = 1
	eventtypeFdWrite = 2

	subclockAbstime      = 1
	eventFdReadwriteHup  = 1
	maxPollSubscriptions = 1 << 16 // Go's netpoller allows 65535
)

var le = binary.LittleEndian

// subscription is one decoded poll_oneoff subscription.
type subscription struct {
	userdata uint64
	typ      byte
	fd       uint32        // fd_read and fd_write
	timeout  time.Duration // clock: relative
	abstime  bool          // clock: absolute, which wazero 1.12 does not support either
}

func decodeSubscription(b []byte) subscription {
	s := subscription{userdata: le.Uint64(b[0:]), typ: b[8]}
	switch s.typ {
	case eventtypeClock:
		s.timeout = time.Duration(min(le.Uint64(b[24:]), 1<<63-1))
		s.abstime = le.Uint16(b[40:])&subclockAbstime != 0
	case eventtypeFdRead, eventtypeFdWrite:
		s.fd = le.Uint32(b[16:])
	}
	return s
}

// putEvent writes one event into out.
func putEvent(out []byte, userdata uint64, errno uint16, typ byte, hangup bool) {
	clear(out[:eventSize])
	le.PutUint64(out[0:], userdata)
	le.PutUint16(out[8:], errno)
	out[10] = typ
	if hangup {
		le.PutUint16(out[24:], eventFdReadwriteHup)
	}
}

// pollArgs are poll_oneoff's decoded arguments.
type pollArgs struct {
	subs    []subscription
	out     []byte // nsubscriptions events
	nevents uint32 // address of the result count
}

// readPollArgs decodes poll_oneoff's arguments from the guest's memory; a
// zero errno means ok.
func readPollArgs(mod api.Module, stack []uint64) (pollArgs, uint64) {
	in, out, n, nevents := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	if n == 0 || n > maxPollSubscriptions {
		return pollArgs{}, errnoInval
	}
	mem := mod.Memory()
	inBuf, ok := mem.Read(in, n*subscriptionSize)
	if !ok {
		return pollArgs{}, errnoFault
	}
	outBuf, ok := mem.Read(out, n*eventSize)
	if !ok {
		return pollArgs{}, errnoFault
	}
	a := pollArgs{subs: make([]subscription, n), out: outBuf, nevents: nevents}
	for i := range a.subs {
		a.subs[i] = decodeSubscription(inBuf[i*subscriptionSize:])
		switch a.subs[i].typ {
		case eventtypeClock, eventtypeFdRead, eventtypeFdWrite:
		default:
			return pollArgs{}, errnoInval
		}
		if a.subs[i].abstime {
			return pollArgs{}, errnoNotsup
		}
	}
	return a, errnoSuccess
}

// clockOnly reports whether every subscription is a clock: a sleep.
func (a pollArgs) clockOnly() bool {
	for _, s := range a.subs {
		if s.typ != eventtypeClock {
			return false
		}
	}
	return true
}

// minTimeout is the shortest clock timeout, or -1 without clocks.
func (a pollArgs) minTimeout() time.Duration {
	d := time.Duration(-1)
	for _, s := range a.subs {
		if s.typ == eventtypeClock && (d < 0 || s.timeout < d) {
			d = s.timeout
		}
	}
	return d
}

// putClockEvents writes an event for every clock that has run out after
// elapsed and returns how many events are in out then, starting at n.
func (a pollArgs) putClockEvents(n int, elapsed time.Duration) int {
	for _, s := range a.subs {
		if s.typ == eventtypeClock && s.timeout <= elapsed {
			putEvent(a.out[n*eventSize:], s.userdata, errnoSuccess, eventtypeClock, false)
			n++
		}
	}
	return n
}

// sleepClocks serves a poll_oneoff of clocks only (how Go's time.Sleep and
// timers wait in a wasip1 guest with nothing else to do). wazero 1.12
// sleeps on the host without looking at the context, so a guest asleep for an
// hour could not be stopped for an hour; here the sleep ends with ctx, and
// the instance is then closed by wazero (WithCloseOnContextDone) as soon as
// the guest runs again.
func sleepClocks(ctx context.Context, mod api.Module, a pollArgs) uint64 {
	d := a.minTimeout()
	start := time.Now()
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	n := a.putClockEvents(0, time.Since(start))
	if !mod.Memory().WriteUint32Le(a.nevents, uint32(n)) {
		return errnoFault
	}
	return errnoSuccess
}
