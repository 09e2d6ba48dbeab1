package appservices

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/kvserver"
	skiffrt "github.com/skiffhq/skiff/runtime"
)

// env is a bus with JetStream, the key-value service on a control-plane
// connection, and the services of namespaces shop and other on a node
// connection, as the engine wires them.
func env(t *testing.T) (shop, other *Services) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	srv, err := bus.Start(ctx, bus.Config{Name: "apps-test", JetStreamDir: t.TempDir(),
		NodePermissions: &bus.Permissions{
			Publish:   []string{bus.SubjectAppsAny, bus.SubjectKV, bus.InboxSubjects},
			Subscribe: []string{bus.SubjectAppsAny, bus.SubjectKVEventsAny, bus.InboxSubjects},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	cp, err := srv.Connect(ctx, "control-plane")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Close)
	kv, err := kvserver.Start(ctx, kvserver.Config{Bus: cp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kv.Stop)
	node, err := srv.ConnectNode(ctx, "node")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Close)
	if shop, err = New(node, "shop", nil); err != nil {
		t.Fatal(err)
	}
	if other, err = New(node, "other", nil); err != nil {
		t.Fatal(err)
	}
	return shop, other
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRequestReplyScopedToNamespace(t *testing.T) {
	shop, other := env(t)
	ctx := tctx(t)
	got := make(chan skiffrt.AppMessage, 16)
	stop, err := shop.Subscribe(ctx, "greet.*", "workers", func(m skiffrt.AppMessage) {
		got <- m
		if m.Reply != "" {
			shop.Publish(ctx, m.Reply, "", append([]byte("hi, "), m.Data...))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	otherGot := make(chan skiffrt.AppMessage, 16)
	stopOther, err := other.Subscribe(ctx, ">", "", func(m skiffrt.AppMessage) { otherGot <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer stopOther()

	m, err := shop.Request(ctx, "greet.en", []byte("world"))
	if err != nil || string(m.Data) != "hi, world" {
		t.Fatalf("Request = %+v, %v", m, err)
	}
	if in := <-got; in.Subject != "greet.en" || in.Reply == "" {
		t.Fatalf("the server got %+v: want the guest's subject and a reply of the namespace", in)
	}
	if err := shop.Publish(ctx, "greet.fr", "", []byte("monde")); err != nil {
		t.Fatal(err)
	}
	if in := <-got; in.Subject != "greet.fr" || string(in.Data) != "monde" {
		t.Fatalf("the server got %+v", in)
	}
	// other heard nothing of shop (its subscriber on every subject got
	// none of the above), and nobody answers there.
	stopOther()
	if len(otherGot) != 0 {
		t.Fatalf("other received %+v from shop", <-otherGot)
	}
	if _, err := other.Request(ctx, "greet.en", []byte("x")); !errors.Is(err, skiffrt.ErrNoResponders) {
		t.Fatalf("request in other = %v, want ErrNoResponders", err)
	}
	for _, bad := range []string{">", "a.*", "", "a..b"} {
		if err := shop.Publish(ctx, bad, "", nil); !errors.Is(err, skiffrt.ErrAppInvalid) {
			t.Errorf("Publish(%q) = %v, want ErrAppInvalid", bad, err)
		}
	}
}

func TestKeyValue(t *testing.T) {
	shop, other := env(t)
	ctx := tctx(t)
	if _, err := shop.KVGet(ctx, "hits"); !errors.Is(err, skiffrt.ErrKVNotFound) {
		t.Fatalf("get before any write = %v, want ErrKVNotFound", err)
	}
	changes := make(chan skiffrt.KVEntry, 16)
	stop, err := shop.KVWatch(ctx, "hits", func(e skiffrt.KVEntry) { changes <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	r1, err := shop.KVCreate(ctx, "hits", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := shop.KVCreate(ctx, "hits", []byte("1")); !errors.Is(err, skiffrt.ErrKVExists) {
		t.Fatalf("second create = %v, want ErrKVExists", err)
	}
	r2, err := shop.KVUpdate(ctx, "hits", []byte("2"), r1)
	if err != nil || r2 <= r1 {
		t.Fatalf("update = %d, %v", r2, err)
	}
	if _, err := shop.KVUpdate(ctx, "hits", []byte("3"), r1); !errors.Is(err, skiffrt.ErrKVExists) {
		t.Fatalf("update at a stale revision = %v, want ErrKVExists", err)
	}
	e, err := shop.KVGet(ctx, "hits")
	if err != nil || string(e.Value) != "2" || e.Revision != r2 {
		t.Fatalf("get = %+v, %v", e, err)
	}
	if _, err := other.KVGet(ctx, "hits"); !errors.Is(err, skiffrt.ErrKVNotFound) {
		t.Fatalf("get in other = %v, want ErrKVNotFound: namespaces share a store", err)
	}
	if err := shop.KVDelete(ctx, "hits"); err != nil {
		t.Fatal(err)
	}
	if _, err := shop.KVGet(ctx, "hits"); !errors.Is(err, skiffrt.ErrKVNotFound) {
		t.Fatalf("get after delete = %v", err)
	}
	if _, err := shop.KVCreate(ctx, "hits", []byte("again")); err != nil {
		t.Fatalf("create after delete = %v", err)
	}
	want := []skiffrt.KVEntry{{Key: "hits", Value: []byte("1"), Revision: r1}, {Key: "hits", Value: []byte("2"), Revision: r2},
		{Key: "hits", Deleted: true}, {Key: "hits", Value: []byte("again")}}
	for i, w := range want {
		select {
		case g := <-changes:
			if g.Key != w.Key || string(g.Value) != string(w.Value) || g.Deleted != w.Deleted || (w.Revision != 0 && g.Revision != w.Revision) {
				t.Fatalf("change %d = %+v, want %+v", i, g, w)
			}
		case <-ctx.Done():
			t.Fatalf("change %d never came", i)
		}
	}
	if _, err := shop.KVPut(ctx, "bad key", nil); !errors.Is(err, skiffrt.ErrAppInvalid) {
		t.Fatalf("put of a bad key = %v", err)
	}
	if _, err := shop.KVPut(ctx, "big", make([]byte, 600<<10)); !errors.Is(err, skiffrt.ErrAppInvalid) {
		t.Fatalf("put of 600 KiB = %v", err)
	}
}
