package raft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
)

// The forwarding RPC runs net/rpc (multiplexed, concurrent calls on one
// connection) over the mux layer. Arguments are skiff's own binary encoding or
// builtin types; errors travel by message and are mapped back to sentinels.

// forwardService answers followers. Its methods run on the leader and return
// errors in wire form (see errToWire).
type forwardService struct{ s *Store }

// Apply submits a batch a follower formed to this server's raft.
func (f *forwardService) Apply(batch []byte, reply *[]byte) error {
	rs, err := f.s.applyLocal(batch)
	if err != nil {
		return wire(err)
	}
	*reply = encodeResults(rs)
	return nil
}

// ReadIndex returns a log index that covers every write acknowledged before
// the call; the follower waits until it has applied that far.
func (f *forwardService) ReadIndex(_ struct{}, reply *uint64) error {
	i, err := f.s.leaderReadIndex()
	*reply = i
	return wire(err)
}

// Term answers this server's current term: the leader's proof, for a
// linearizable read, that no later leader exists (see confirmTerm).
func (f *forwardService) Term(_ struct{}, reply *uint64) error {
	*reply = f.s.raft.CurrentTerm()
	return nil
}

// AddVoter and RemoveServer change membership; args are [id, address].
func (f *forwardService) AddVoter(args [2]string, _ *struct{}) error {
	return wire(f.s.changeLocal(args, true))
}

func (f *forwardService) RemoveServer(args [2]string, _ *struct{}) error {
	return wire(f.s.changeLocal(args, false))
}

func wire(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(errToWire(err))
}

// errDial marks a failure to reach the leader before anything was sent: the
// caller may retry, possibly with another leader.
var errDial = errors.New("dial leader")

// forwarder keeps one RPC client per leader address.
type forwarder struct {
	mux     *muxLayer // nil without a listener
	timeout time.Duration

	mu      sync.Mutex
	clients map[string]*rpc.Client
}

func (f *forwarder) client(addr string) (*rpc.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[addr]; ok {
		return c, nil
	}
	if f.mux == nil {
		// No listener, no dialing either. A lone server is its own leader
		// and never forwards; were raft to name another, the caller
		// retries as with no leader and fails with ErrNoLeader.
		return nil, fmt.Errorf("%w %s: %w", errDial, addr, ErrNoListener)
	}
	conn, err := f.mux.dial(addr, f.timeout)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", errDial, addr, err)
	}
	if _, err := conn.Write([]byte{forwardMagic}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w %s: %w", errDial, addr, err)
	}
	c := rpc.NewClient(conn)
	f.clients[addr] = c
	return c, nil
}

func (f *forwarder) drop(addr string, c *rpc.Client) {
	f.mu.Lock()
	if f.clients[addr] == c {
		delete(f.clients, addr)
	}
	f.mu.Unlock()
	c.Close()
}

// call runs one RPC on the leader at addr. A transport failure after the call
// was sent is returned as errLost so the caller can tell it from a dial error.
func (f *forwarder) call(ctx context.Context, addr hraft.ServerAddress, method string, args, reply any) error {
	c, err := f.client(string(addr))
	if err != nil {
		return err
	}
	call := c.Go("Skiff."+method, args, reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
	case <-ctx.Done():
		// The call was sent: the leader may still carry it out.
		return fmt.Errorf("%w: forward %s to %s: %w", ErrIndeterminate, method, addr, ctx.Err())
	}
	var se rpc.ServerError
	switch {
	case call.Error == nil:
		return nil
	case errors.As(call.Error, &se):
		return errFromWire(string(se))
	default:
		f.drop(string(addr), c)
		return fmt.Errorf("forward %s to %s: %w: %w", method, addr, errLost, call.Error)
	}
}

// errLost: the connection to the leader broke while a call was in flight.
var errLost = errors.New("connection to leader lost")

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for a, c := range f.clients {
		c.Close()
		delete(f.clients, a)
	}
}

func serveForward(s *Store) func(net.Conn) {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Skiff", &forwardService{s: s}); err != nil {
		panic(fmt.Sprintf("register forwarding rpc: %v", err)) // a programming error, caught by every test
	}
	return func(c net.Conn) { srv.ServeConn(c) }
}
