package servicefeed

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
	"github.com/skiffhq/skiff/internal/testutil"
)

// fakeControlPlane plays the publisher by hand on a real bus, so a test
// can lose events, restart with another epoch, and count lists: the
// failures the subscriber must heal from.
type fakeControlPlane struct {
	t    *testing.T
	conn *bus.Conn

	mu       sync.Mutex
	epoch    string
	seq      uint64
	services map[string]corev1.Service
	lists    int
}

func newFakeControlPlane(t *testing.T, conn *bus.Conn) *fakeControlPlane {
	f := &fakeControlPlane{t: t, conn: conn, epoch: "e1", services: map[string]corev1.Service{}}
	sub, err := bus.Serve(t.Context(), conn, bus.SubjectFeedList, "servicefeed",
		func(_ context.Context, req protocol.FeedListRequest) (protocol.FeedList, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.lists++
			resp := protocol.FeedList{Epoch: f.epoch, Seq: f.seq, Items: []json.RawMessage{}}
			if req.Resource == Services {
				for _, s := range f.services {
					raw, _ := json.Marshal(s)
					resp.Items = append(resp.Items, raw)
				}
			}
			return resp, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
	return f
}

// change applies a Service change and publishes it, unless lost.
func (f *fakeControlPlane) change(typ, name string, lost bool) {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	svc := corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
	if typ == "DELETED" {
		delete(f.services, name)
	} else {
		f.services[name] = svc
	}
	f.seq++
	if lost {
		return
	}
	raw, _ := json.Marshal(svc)
	f.publish(protocol.FeedEvent{Epoch: f.epoch, Seq: f.seq, Type: typ, Resource: Services, Object: raw})
}

func (f *fakeControlPlane) tick() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.publish(protocol.FeedEvent{Epoch: f.epoch, Seq: f.seq})
}

// restart is a new control plane: another epoch, counting from zero.
func (f *fakeControlPlane) restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.epoch, f.seq = f.epoch+"'", 0
}

func (f *fakeControlPlane) publish(ev protocol.FeedEvent) {
	if err := bus.Publish(context.Background(), f.conn, bus.SubjectFeedEvents, ev); err != nil {
		f.t.Error(err)
	}
}

func (f *fakeControlPlane) listCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists
}

func startBus(t *testing.T) *bus.Server {
	t.Helper()
	srv, err := bus.Start(t.Context(), bus.Config{Name: "feed-test", Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func connect(t *testing.T, srv *bus.Server, name string) *bus.Conn {
	t.Helper()
	c, err := srv.Connect(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// informerNames runs a Service informer over the subscriber and returns
// a function listing the names it holds.
func informerNames(t *testing.T, s *Subscriber) func() string {
	lw, err := s.ListerWatcher(Services)
	if err != nil {
		t.Fatal(err)
	}
	inf := cache.NewSharedIndexInformer(lw, &corev1.Service{}, 0, cache.Indexers{})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		inf.Run(stop)
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	return func() string {
		var names []string
		for _, o := range inf.GetStore().List() {
			names = append(names, o.(*corev1.Service).Name)
		}
		sort.Strings(names)
		return strings.Join(names, ",")
	}
}

func waitNames(t *testing.T, names func() string, want string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := names(); got != want {
			return fmt.Errorf("informer holds %q, want %q", got, want)
		}
		return nil
	})
}

func TestSubscriberHealsLostEventsAndRestarts(t *testing.T) {
	srv := startBus(t)
	cp := newFakeControlPlane(t, connect(t, srv, "control-plane"))
	cp.change("ADDED", "a", false)
	sub, err := Subscribe(t.Context(), connect(t, srv, "node"), testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
	names := informerNames(t, sub)
	waitNames(t, names, "a")
	if n := cp.listCount(); n != 1 {
		t.Fatalf("%d lists to start, want 1", n)
	}

	// Events in order are applied without listing again.
	cp.change("ADDED", "b", false)
	cp.change("DELETED", "a", false)
	waitNames(t, names, "b")
	if n := cp.listCount(); n != 1 {
		t.Fatalf("%d lists after in-order events, want still 1", n)
	}

	// A lost event is noticed at the next one: the watch ends with 410
	// and the informer lists again, which brings what was lost.
	cp.change("ADDED", "lost", true)
	cp.change("ADDED", "c", false)
	waitNames(t, names, "b,c,lost")
	if n := cp.listCount(); n != 2 {
		t.Fatalf("%d lists after a lost event, want 2", n)
	}

	// A lost last event is noticed at the next tick.
	cp.change("DELETED", "b", true)
	cp.tick()
	waitNames(t, names, "c,lost")

	// A restarted control plane (another epoch) is listed again, even
	// when its counter happens to continue where the old one stopped.
	lists := cp.listCount()
	cp.restart()
	cp.change("DELETED", "lost", true)
	cp.change("ADDED", "d", true)
	cp.change("ADDED", "e", true)
	cp.change("ADDED", "f", true)
	cp.change("ADDED", "g", false)
	waitNames(t, names, "c,d,e,f,g")
	if n := cp.listCount(); n <= lists {
		t.Fatalf("no list after the control plane restarted (%d lists)", n)
	}
}

// A watch from a position the history no longer reaches cannot continue:
// it ends with 410 rather than skipping what it missed.
func TestWatchFromBeyondHistoryExpires(t *testing.T) {
	srv := startBus(t)
	conn := connect(t, srv, "node")
	sub, err := Subscribe(t.Context(), conn, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
	raw, _ := json.Marshal(corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "x"}})
	for seq := uint64(1); seq <= historySize+10; seq++ {
		sub.handle(protocol.FeedEvent{Epoch: "e", Seq: seq, Type: "ADDED", Resource: Services, Object: raw})
	}
	lw, err := sub.ListerWatcher(Services)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rv        string
		wantError bool
		wantSeen  int
	}{
		{position("e", 1), true, 0},               // needs event 2, long gone
		{position("e", historySize+5), false, 5},  // the last five, from history
		{position("other", historySize), true, 0}, // another epoch
		{"12345", true, 0},                        // an object's resourceVersion
		{position("e", historySize+10), false, 0}, // up to date: waits
	} {
		w, err := lw.Watch(metav1.ListOptions{ResourceVersion: tc.rv})
		if err != nil {
			if !tc.wantError {
				t.Errorf("watch from %s: %v", tc.rv, err)
			}
			continue
		}
		seen, gotError := 0, false
	drain:
		for {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					break drain
				}
				if ev.Type == "ERROR" {
					gotError = true
				} else {
					seen++
				}
			case <-time.After(100 * time.Millisecond):
				break drain
			}
		}
		w.Stop()
		if gotError != tc.wantError || seen != tc.wantSeen {
			t.Errorf("watch from %s: %d events, error %v; want %d, error %v", tc.rv, seen, gotError, tc.wantSeen, tc.wantError)
		}
	}
}
