package raft

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
)

// A store with no Bind opens no port, keeps its data across restarts, and
// refuses to grow a cluster it could not be reached in.
func TestNoListenerStoreRestarts(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, "s1", dir)
	ctx := ctxT(t)
	s := openSingle(t, cfg)
	if s.mux != nil || s.Addr() != "" {
		t.Fatalf("store without Bind listens: mux %v, Addr %q", s.mux, s.Addr())
	}
	if id, addr := s.Leader(); id != "s1" || addr != "" {
		t.Fatalf("Leader() = %q %q, want s1 and no address", id, addr)
	}
	ms, err := s.Members()
	if err != nil || len(ms) != 1 || ms[0] != (Member{ID: "s1", Addr: "", Voter: true}) {
		t.Fatalf("members: %+v %v", ms, err)
	}
	kv, err := s.Create(ctx, "/k/a", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddVoter(ctx, "s2", "127.0.0.1:1"); !errors.Is(err, ErrNoListener) {
		t.Fatalf("AddVoter on a store without a listener: %v, want ErrNoListener", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openSingle(t, cfg)
	got, _, err := s.Get(ctx, "/k/a", ReadOptions{})
	if err != nil || string(got.Value) != "one" || got.ModRev != kv.ModRev {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	if _, err := s.Update(ctx, "/k/a", []byte("two"), kv.ModRev); err != nil {
		t.Fatalf("write after restart: %v", err)
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Once more, from a snapshot this time.
	s = openSingle(t, cfg)
	if got, _, err := s.Get(ctx, "/k/a", ReadOptions{}); err != nil || string(got.Value) != "two" {
		t.Fatalf("after restart from a snapshot: %+v %v", got, err)
	}
}

func TestNoListenerConfigErrors(t *testing.T) {
	cfg := testConfig(t, "s1", t.TempDir())
	cfg.Bootstrap = false
	if _, err := Open(context.Background(), cfg); !errors.Is(err, ErrNoListener) {
		t.Fatalf("no state, no Bootstrap, no Bind: %v, want ErrNoListener", err)
	}
	cfg = testConfig(t, "s1", t.TempDir())
	cfg.Advertise = "127.0.0.1:7000"
	if _, err := Open(context.Background(), cfg); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Advertise without Bind: %v, want ErrInvalid", err)
	}
}

// membersAddr waits until s's configuration names id at addr.
func waitMemberAddr(t *testing.T, s *Store, id, addr string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		ms, err := s.Members()
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.ID == id && m.Addr == addr {
				return nil
			}
		}
		return fmt.Errorf("members %+v do not name %s at %q", ms, id, addr)
	})
}

// A server that ran alone with no listener is reopened with one and grows a
// cluster: the configuration in its log then names its real address, so the
// new server reaches it. Reopened without a listener, it refuses to start,
// since the log now names a server it could not talk to.
func TestListenerAddedToAStoreThatHadNone(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	cfg := testConfig(t, "s1", filepath.Join(dir, "s1"))
	s1 := openSingle(t, cfg)
	if _, err := s1.Create(ctx, "/k/before", []byte("alone")); err != nil {
		t.Fatal(err)
	}
	s1.Close()

	cfg.Bind = "127.0.0.1:0"
	s1 = openSingle(t, cfg)
	if s1.Addr() == "" {
		t.Fatal("store with Bind has no address")
	}
	waitMemberAddr(t, s1, "s1", s1.Addr())

	cfg2 := testConfig(t, "s2", filepath.Join(dir, "s2"))
	cfg2.Bind, cfg2.Bootstrap = "127.0.0.1:0", false
	s2, err := Open(context.Background(), cfg2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	if err := s1.AddVoter(ctx, "s2", s2.Addr()); err != nil {
		t.Fatal(err)
	}
	// s2 learns s1's address from the log, not from the leader's
	// heartbeats alone: it is what s2 would dial to ask for a vote.
	waitMemberAddr(t, s2, "s1", s1.Addr())
	if _, err := s2.Create(ctx, "/k/through-s2", []byte("forwarded")); err != nil {
		t.Fatalf("write through the new follower: %v", err)
	}
	if got, _, err := s2.Get(ctx, "/k/before", ReadOptions{}); err != nil || string(got.Value) != "alone" {
		t.Fatalf("read on the new follower: %+v %v", got, err)
	}
	s1.Close()
	s2.Close()

	cfg.Bind = ""
	if s, err := Open(context.Background(), cfg); !errors.Is(err, ErrNoListener) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("opening a cluster member without a listener: %v, want ErrNoListener", err)
	}
}

// A single server that ran with a listener runs on without one, and its
// configuration stops naming the old port.
func TestListenerRemovedFromASingleServer(t *testing.T) {
	ctx := ctxT(t)
	cfg := testConfig(t, "s1", t.TempDir())
	cfg.Bind = "127.0.0.1:0"
	s := openSingle(t, cfg)
	kv, err := s.Create(ctx, "/k/a", []byte("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	cfg.Bind = ""
	s = openSingle(t, cfg)
	waitMemberAddr(t, s, "s1", "")
	if got, _, err := s.Get(ctx, "/k/a", ReadOptions{}); err != nil || got.ModRev != kv.ModRev {
		t.Fatalf("after restart without a listener: %+v %v", got, err)
	}
	if _, err := s.Create(ctx, "/k/b", nil); err != nil {
		t.Fatal(err)
	}
}
