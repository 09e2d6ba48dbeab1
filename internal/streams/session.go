package streams

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// errClosed: the session was closed on this side.
var errClosed = errors.New("stream session closed")

// errCancelled: the API side went away (kubectl exited, the request ended).
var errCancelled = errors.New("stream cancelled by the API side")

// A session is one Backend call relayed over the bus: a few byte channels
// each way, with credit-based flow control, plus control frames. Both sides
// use it; the node side (node true) ends a session with an end frame, the API
// side (node false) with a cancel frame.
//
// Flow control: a receiver buffers at most window bytes per channel. A sender
// starts with window bytes of credit per channel and spends it on data
// frames; the receiver grants it back as its reader consumes. So a slow
// reader stops the writer (its Write blocks) and neither side nor NATS ever
// holds more than window bytes per channel for a session.
//
// Threading: frames arrive on the subscription's goroutine (onMsg), which
// never blocks. One goroutine may read and one may write each channel at a
// time (writes are serialized by a mutex; concurrent reads are not
// supported).
type session struct {
	nc   *nats.Conn
	log  *slog.Logger
	tm   timing
	node bool
	st   *sideStats
	// sendWindow is the peer's receive window per channel.
	sendWindow int
	// inbox is where this side receives; sub its subscription.
	inbox string
	sub   *nats.Subscription

	endOnce sync.Once  // the node sends one end frame
	sendMu  sync.Mutex // orders seq assignment with publishing
	sendSeq uint64
	peer    string // the other side's inbox; set before anything is sent

	mu       sync.Mutex
	recvSeq  uint64
	lastRecv time.Time
	in       [numCh]inbound
	out      [numCh]outbound
	// resize receives the client's terminal sizes (node side, TTY exec).
	resize chan TerminalSize
	// end is the node's result (API side); ended is closed when it came.
	end   *endMsg
	ended chan struct{}
	// done is closed when the session is over on this side; err says why
	// (errClosed for a normal close).
	done chan struct{}
	err  error
}

type inbound struct {
	buf     [][]byte
	n       int // bytes in buf
	eof     bool
	unacked int // bytes read and not yet granted back
	notify  chan struct{}
}

type outbound struct {
	wmu    sync.Mutex // one writer at a time, so chunks stay in order
	credit int
	eof    bool
	notify chan struct{}
}

// sideStats count what a side's sessions hold, for tests and for reasoning
// about memory: outstanding bytes were sent and not yet granted back (they
// sit in NATS or in the peer's buffer), buffered bytes were received and not
// yet read. Peaks are since the last reset.
type sideStats struct {
	sessions atomic.Int64
	// waiting counts writers blocked for want of credit.
	waiting                      atomic.Int64
	outstanding, peakOutstanding atomic.Int64
	buffered, peakBuffered       atomic.Int64
}

var nodeStats, apiStats sideStats

func addPeak(cur, peak *atomic.Int64, delta int64) {
	v := cur.Add(delta)
	for {
		p := peak.Load()
		if v <= p || peak.CompareAndSwap(p, v) {
			return
		}
	}
}

// newSession subscribes to inbox, a fresh one (the node side's
// nc.NewInbox, under its own prefix; the API side's
// bus.ControlPlaneInbox, the only inboxes of the control plane the node
// may write to); start makes it usable.
func newSession(nc *nats.Conn, log *slog.Logger, tm timing, node bool, inbox string) (*session, error) {
	s := &session{nc: nc, log: log, tm: tm, node: node, st: &apiStats, inbox: inbox,
		lastRecv: time.Now(), ended: make(chan struct{}), done: make(chan struct{})}
	if node {
		s.st = &nodeStats
	}
	for i := range s.in {
		s.in[i].notify = make(chan struct{}, 1)
		s.out[i].notify = make(chan struct{}, 1)
	}
	sub, err := nc.Subscribe(s.inbox, s.onMsg)
	if err != nil {
		return nil, fmt.Errorf("subscribe session inbox: %w", err)
	}
	s.sub = sub
	s.st.sessions.Add(1)
	return s, nil
}

// start records the peer's inbox and its receive window (the credit this
// side starts with on each channel), and starts the keepalive.
func (s *session) start(peer string, sendWindow int) {
	s.sendMu.Lock()
	s.peer = peer
	s.sendMu.Unlock()
	s.mu.Lock()
	s.sendWindow = sendWindow
	for i := range s.out {
		s.out[i].credit = sendWindow
	}
	s.mu.Unlock()
	go s.keepalive()
}

// wait waits for the node's answer (or the session's end) and returns it.
func (s *session) wait() (int, error) {
	select {
	case <-s.ended:
	case <-s.done:
	}
	return s.result()
}

// result is the node's answer once the session ended there: the exit code
// and the Backend's error, or why the session broke before that.
func (s *session) result() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end != nil {
		return s.end.ExitCode, s.end.err()
	}
	if s.err != nil && !errors.Is(s.err, errClosed) {
		return 0, s.err
	}
	return 0, fmt.Errorf("%w: the node sent no result", ErrSessionLost)
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// send publishes one frame. Publishing only buffers (nats.go flushes in the
// background), so it does not block on the peer.
func (s *session) send(t frameType, ch byte, payload []byte) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.sendSeq++
	if err := s.nc.Publish(s.peer, encodeFrame(t, ch, s.sendSeq, payload)); err != nil {
		return fmt.Errorf("%w: publish: %w", ErrSessionLost, err)
	}
	return nil
}

func (s *session) sendJSON(t frameType, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.send(t, 0, b)
}

// onMsg handles one frame from the peer. It runs on the subscription's
// goroutine and never blocks.
func (s *session) onMsg(m *nats.Msg) {
	t, ch, seq, payload, err := decodeFrame(m.Data)
	s.mu.Lock()
	if s.isDone() {
		s.mu.Unlock()
		return
	}
	if err == nil && seq != s.recvSeq+1 {
		err = fmt.Errorf("%w: frame %d after %d (frames lost)", ErrSessionLost, seq, s.recvSeq)
	}
	if err == nil {
		s.recvSeq, s.lastRecv = seq, time.Now()
		err = s.handleLocked(t, ch, payload)
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("streams: ending session", "err", err)
		s.abort(err)
	}
}

func (s *session) handleLocked(t frameType, ch byte, payload []byte) error {
	if (t == frameData || t == frameCredit || t == frameEOF) && int(ch) >= numCh {
		return fmt.Errorf("%w: channel %d", ErrSessionLost, ch)
	}
	switch t {
	case frameData:
		in := &s.in[ch]
		if in.eof {
			return fmt.Errorf("%w: data after end of channel %d", ErrSessionLost, ch)
		}
		if in.n+len(payload) > s.tm.window {
			return fmt.Errorf("%w: peer overran the window on channel %d", ErrSessionLost, ch)
		}
		in.buf = append(in.buf, payload)
		in.n += len(payload)
		addPeak(&s.st.buffered, &s.st.peakBuffered, int64(len(payload)))
		notify(in.notify)
	case frameCredit:
		if len(payload) != 4 {
			return fmt.Errorf("%w: bad credit frame", ErrSessionLost)
		}
		n := int(binary.BigEndian.Uint32(payload))
		out := &s.out[ch]
		out.credit += n
		s.st.outstanding.Add(-int64(n))
		notify(out.notify)
	case frameEOF:
		s.in[ch].eof = true
		notify(s.in[ch].notify)
	case frameResize:
		var sz TerminalSize
		if s.resize == nil || json.Unmarshal(payload, &sz) != nil {
			return nil // not a TTY session, or junk: a size is only a hint
		}
		for {
			select {
			case s.resize <- sz:
				return nil
			default:
			}
			select { // full: drop the oldest, keep the latest
			case <-s.resize:
			default:
			}
		}
	case frameEnd:
		if s.end != nil {
			return nil // the node's own abort raced its result: the first counts
		}
		var m endMsg
		if err := json.Unmarshal(payload, &m); err != nil {
			return fmt.Errorf("%w: bad end frame: %w", ErrSessionLost, err)
		}
		s.end = &m
		for i := range s.in {
			s.in[i].eof = true
			notify(s.in[i].notify)
		}
		close(s.ended)
	case frameCancel:
		return errCancelled
	case framePing:
	default:
		return fmt.Errorf("%w: unknown frame type %d", ErrSessionLost, t)
	}
	return nil
}

func (s *session) isDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// read reads channel ch; io.EOF once the peer closed it (or ended) and
// everything buffered was read.
func (s *session) read(ch byte, p []byte) (int, error) {
	in := &s.in[ch]
	for {
		s.mu.Lock()
		if in.n > 0 {
			n := copy(p, in.buf[0])
			if n == len(in.buf[0]) {
				in.buf[0] = nil
				in.buf = in.buf[1:]
			} else {
				in.buf[0] = in.buf[0][n:]
			}
			in.n -= n
			in.unacked += n
			s.st.buffered.Add(-int64(n))
			grant := 0
			// Grant in batches (a quarter window) to keep control frames few.
			// No deadlock: a sender out of credit has a full window here, so
			// the reader always gets to a quarter of it.
			if in.unacked >= s.tm.window/4 {
				grant, in.unacked = in.unacked, 0
			}
			s.mu.Unlock()
			if grant > 0 {
				var b [4]byte
				binary.BigEndian.PutUint32(b[:], uint32(grant))
				_ = s.send(frameCredit, ch, b[:]) // a failed send ends the session anyway
			}
			return n, nil
		}
		if in.eof {
			s.mu.Unlock()
			return 0, io.EOF
		}
		if s.isDone() {
			err := s.err
			s.mu.Unlock()
			return 0, err
		}
		s.mu.Unlock()
		select {
		case <-in.notify:
		case <-s.done:
		}
	}
}

// write sends p on channel ch, blocking while the peer has granted no
// credit.
func (s *session) write(ch byte, p []byte) (int, error) {
	out := &s.out[ch]
	out.wmu.Lock()
	defer out.wmu.Unlock()
	written := 0
	for len(p) > 0 {
		s.mu.Lock()
		if s.isDone() {
			err := s.err
			s.mu.Unlock()
			return written, err
		}
		if out.eof {
			s.mu.Unlock()
			return written, fmt.Errorf("write after close: %w", io.ErrClosedPipe)
		}
		if out.credit == 0 {
			s.mu.Unlock()
			s.st.waiting.Add(1)
			select {
			case <-out.notify:
			case <-s.done:
			}
			s.st.waiting.Add(-1)
			continue
		}
		n := min(len(p), out.credit, s.tm.chunk)
		out.credit -= n
		addPeak(&s.st.outstanding, &s.st.peakOutstanding, int64(n))
		s.mu.Unlock()
		if err := s.send(frameData, ch, p[:n]); err != nil {
			s.abort(err)
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// closeWrite tells the peer that nothing more comes on channel ch.
func (s *session) closeWrite(ch byte) error {
	out := &s.out[ch]
	out.wmu.Lock()
	defer out.wmu.Unlock()
	s.mu.Lock()
	if out.eof || s.isDone() {
		s.mu.Unlock()
		return nil
	}
	out.eof = true
	s.mu.Unlock()
	return s.send(frameEOF, ch, nil)
}

// keepalive pings the peer and ends the session when the peer has been
// silent for longer than the idle timeout (its process or its bus connection
// is gone).
func (s *session) keepalive() {
	t := time.NewTicker(s.tm.ping)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		s.mu.Lock()
		silent := time.Since(s.lastRecv)
		s.mu.Unlock()
		if silent > s.tm.idle {
			s.abort(fmt.Errorf("%w: peer silent for %v", ErrSessionLost, silent.Round(time.Millisecond)))
			return
		}
		if err := s.send(framePing, 0, nil); err != nil {
			s.abort(err)
			return
		}
	}
}

// abort ends the session with err, telling the peer: the API side cancels,
// the node side ends with the error.
func (s *session) abort(err error) {
	if s.isDone() {
		return
	}
	if s.node {
		s.sendEnd(endFor(0, err))
	} else {
		s.mu.Lock()
		ended := s.end != nil
		s.mu.Unlock()
		if !ended {
			_ = s.send(frameCancel, 0, nil)
		}
	}
	s.finish(err)
}

// sendEnd sends the node's end frame, once.
func (s *session) sendEnd(m endMsg) {
	s.endOnce.Do(func() { _ = s.sendJSON(frameEnd, m) })
}

// finish marks the session over with err and releases it; safe to call
// more than once (the first err wins).
func (s *session) finish(err error) {
	s.mu.Lock()
	if s.isDone() {
		s.mu.Unlock()
		return
	}
	s.err = err
	close(s.done)
	var outstanding, buffered int
	for i := range s.in {
		buffered += s.in[i].n
		outstanding += s.sendWindow - s.out[i].credit
	}
	s.mu.Unlock()
	// What the peer never granted back or this side never read is no
	// longer held by this session.
	s.st.buffered.Add(-int64(buffered))
	s.st.outstanding.Add(-int64(outstanding))
	s.st.sessions.Add(-1)
	if err := s.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		s.log.Debug("streams: unsubscribe session", "err", err)
	}
}

// reader and writer adapt a channel to io interfaces.
type chanReader struct {
	s  *session
	ch byte
}

func (r chanReader) Read(p []byte) (int, error) { return r.s.read(r.ch, p) }

type chanWriter struct {
	s  *session
	ch byte
}

func (w chanWriter) Write(p []byte) (int, error) { return w.s.write(w.ch, p) }
