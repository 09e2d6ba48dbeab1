package wasisock

import (
	"context"
	"time"

	"github.com/tetratelabs/wazero/api"
	"golang.org/x/sys/unix"
)

// pollOneoff is poll_oneoff(in, out, nsubscriptions, result.nevents).
func pollOneoff(ctx context.Context, mod api.Module, stack []uint64, orig api.GoModuleFunction) {
	t := sockets(ctx)
	a, e := readPollArgs(mod, stack)
	switch {
	case e != errnoSuccess:
		stack[0] = e
	case a.clockOnly():
		stack[0] = sleepClocks(ctx, mod, a)
	case t == nil || !t.hasSockets(a):
		// Files and stdin only: wazero's semantics, unchanged.
		orig.Call(ctx, mod, stack)
	default:
		stack[0] = t.poll(ctx, mod, a)
	}
}

func (t *sockTable) hasSockets(a pollArgs) bool {
	for _, s := range a.subs {
		if s.typ != eventtypeClock && t.files[s.fd] != nil {
			return true
		}
	}
	return false
}

// poll waits for the guest's socket subscriptions with ppoll.
// Subscriptions on other descriptors (files, stdio) are reported ready at
// once, as poll(2) reports regular files and as wazero reports non-blocking
// descriptors; the guest's next read or write tells the truth.
func (t *sockTable) poll(ctx context.Context, mod api.Module, a pollArgs) uint64 {
	pfds := make([]unix.PollFd, 0, len(a.subs)+1)
	slot := make([]int, len(a.subs)) // index in pfds, or -1
	n := 0                           // events written
	for i, s := range a.subs {
		slot[i] = -1
		if s.typ == eventtypeClock {
			continue
		}
		f := t.files[s.fd]
		if f == nil {
			putEvent(a.out[n*eventSize:], s.userdata, errnoSuccess, s.typ, false)
			n++
			continue
		}
		if f.closed {
			putEvent(a.out[n*eventSize:], s.userdata, errnoBadf, s.typ, false)
			n++
			continue
		}
		// Polling a listener is using it: it listens from now on.
		if e := f.startListening(); e != errnoSuccess {
			putEvent(a.out[n*eventSize:], s.userdata, uint16(e), s.typ, false)
			n++
			continue
		}
		ev := int16(unix.POLLIN)
		if s.typ == eventtypeFdWrite {
			ev = unix.POLLOUT
		}
		slot[i] = len(pfds)
		pfds = append(pfds, unix.PollFd{Fd: int32(f.fd), Events: ev})
	}
	wakeFD, err := t.wakeFD()
	if err != nil {
		return toErrno(err)
	}
	wake := len(pfds)
	pfds = append(pfds, unix.PollFd{Fd: int32(wakeFD), Events: unix.POLLIN})

	timeout := a.minTimeout() // -1: none
	if n > 0 || ctx.Err() != nil {
		timeout = 0
	}
	start := time.Now()
	for {
		var ts *unix.Timespec
		if timeout >= 0 {
			spec := unix.NsecToTimespec(max(0, int64(timeout-time.Since(start))))
			ts = &spec
		}
		_, err := unix.Ppoll(pfds, ts, nil)
		if err == unix.EINTR {
			// The host runtime's preemption signals land here too.
			continue
		}
		if err != nil {
			return toErrno(err)
		}
		break
	}
	if pfds[wake].Revents != 0 {
		// The Run is over: report nothing; wazero ends the guest when it
		// runs again.
		return writeNevents(mod, a, n)
	}
	for i, s := range a.subs {
		if slot[i] < 0 {
			continue
		}
		re := pfds[slot[i]].Revents
		if re == 0 {
			continue
		}
		errno := uint64(errnoSuccess)
		if re&unix.POLLNVAL != 0 {
			errno = errnoBadf
		}
		putEvent(a.out[n*eventSize:], s.userdata, uint16(errno), s.typ, re&unix.POLLHUP != 0)
		n++
	}
	n = a.putClockEvents(n, time.Since(start))
	return writeNevents(mod, a, n)
}

func writeNevents(mod api.Module, a pollArgs, n int) uint64 {
	if !mod.Memory().WriteUint32Le(a.nevents, uint32(n)) {
		return errnoFault
	}
	return errnoSuccess
}
