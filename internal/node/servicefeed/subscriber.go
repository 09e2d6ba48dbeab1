package servicefeed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

// Tuning of the node side.
const (
	// historySize bounds the events kept for watches that start from a
	// list answered a moment earlier (the list and the events race on the
	// bus). A watch that needs an older one lists again.
	historySize = 1024
	// watchBuffer bounds the events queued for one watch; a watch whose
	// consumer falls that far behind ends with 410 and lists again, rather
	// than making the bus drop messages for every watch.
	watchBuffer = 1024
	// noResponderPatience is how long a list waits for a publisher to
	// answer at all.
	noResponderPatience = 3 * time.Second
)

// kind maps a feed resource to its Go types.
type kind struct {
	newObj  func() runtime.Object
	newList func(rv string, items []json.RawMessage) (runtime.Object, error)
}

var kinds = map[string]kind{
	Services: {
		newObj: func() runtime.Object { return &corev1.Service{} },
		newList: func(rv string, items []json.RawMessage) (runtime.Object, error) {
			l := &corev1.ServiceList{ListMeta: metav1.ListMeta{ResourceVersion: rv}}
			return l, decodeInto(items, &l.Items)
		},
	},
	EndpointSlices: {
		newObj: func() runtime.Object { return &discoveryv1.EndpointSlice{} },
		newList: func(rv string, items []json.RawMessage) (runtime.Object, error) {
			l := &discoveryv1.EndpointSliceList{ListMeta: metav1.ListMeta{ResourceVersion: rv}}
			return l, decodeInto(items, &l.Items)
		},
	},
	NetworkPolicies: {
		newObj: func() runtime.Object { return &networkingv1.NetworkPolicy{} },
		newList: func(rv string, items []json.RawMessage) (runtime.Object, error) {
			l := &networkingv1.NetworkPolicyList{ListMeta: metav1.ListMeta{ResourceVersion: rv}}
			return l, decodeInto(items, &l.Items)
		},
	},
	Namespaces: {
		newObj: func() runtime.Object { return &corev1.Namespace{} },
		newList: func(rv string, items []json.RawMessage) (runtime.Object, error) {
			l := &corev1.NamespaceList{ListMeta: metav1.ListMeta{ResourceVersion: rv}}
			return l, decodeInto(items, &l.Items)
		},
	},
	Pods: {
		newObj: func() runtime.Object { return &corev1.Pod{} },
		newList: func(rv string, items []json.RawMessage) (runtime.Object, error) {
			l := &corev1.PodList{ListMeta: metav1.ListMeta{ResourceVersion: rv}}
			return l, decodeInto(items, &l.Items)
		},
	},
}

func decodeInto[T any](items []json.RawMessage, out *[]T) error {
	*out = make([]T, len(items))
	for i, raw := range items {
		if err := json.Unmarshal(raw, &(*out)[i]); err != nil {
			return fmt.Errorf("servicefeed: decode list item: %w", err)
		}
	}
	return nil
}

// Subscriber is a node's side of the feed: one subscription to the events,
// shared by the ListerWatchers it hands out.
//
// Threading: events are handled on the bus's delivery goroutine, one at a
// time; ListerWatcher methods may be called from any goroutine.
type Subscriber struct {
	conn *bus.Conn
	log  *slog.Logger
	sub  *bus.Subscription

	mu       sync.Mutex
	history  []protocol.FeedEvent // the last historySize events, oldest first
	watchers map[*feedWatch]bool
}

// Subscribe starts following the feed on conn. It subscribes before any
// list is asked for, so no event after a list's Seq can be missed unseen.
func Subscribe(ctx context.Context, conn *bus.Conn, log *slog.Logger) (*Subscriber, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Subscriber{conn: conn, log: log.With("component", "servicefeed"), watchers: map[*feedWatch]bool{}}
	sub, err := bus.Subscribe(context.WithoutCancel(ctx), conn, bus.SubjectFeedEvents, func(_ context.Context, _ string, ev protocol.FeedEvent) {
		s.handle(ev)
	})
	if err != nil {
		return nil, fmt.Errorf("servicefeed: %w", err)
	}
	s.sub = sub
	return s, nil
}

// Stop ends the subscription and every watch.
func (s *Subscriber) Stop() {
	s.sub.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.watchers {
		s.endLocked(w, nil)
	}
}

func (s *Subscriber) handle(ev protocol.FeedEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev.Type != "" {
		if len(s.history) == historySize {
			s.history = append(s.history[:0], s.history[1:]...)
		}
		s.history = append(s.history, ev)
	}
	for w := range s.watchers {
		s.offerLocked(w, ev)
	}
}

// ListerWatcher returns a client-go ListerWatcher of resource (one of the
// resource constants: Services, EndpointSlices, NetworkPolicies, Namespaces,
// Pods; pods come stripped, see StripPod) over the feed, for a shared
// informer.
func (s *Subscriber) ListerWatcher(resource string) (cache.ListerWatcher, error) {
	k, ok := kinds[resource]
	if !ok {
		return nil, fmt.Errorf("servicefeed: no resource %q in the feed", resource)
	}
	return &cache.ListWatch{
		ListFunc: func(opts metav1.ListOptions) (runtime.Object, error) {
			list, err := s.list(resource)
			if err != nil {
				return nil, err
			}
			return k.newList(position(list.Epoch, list.Seq), list.Items)
		},
		WatchFunc: func(opts metav1.ListOptions) (watch.Interface, error) {
			return s.watch(resource, k, opts.ResourceVersion)
		},
	}, nil
}

// list asks the control plane for every object of resource. While no
// publisher answers (a control plane starting, or changing leader) it asks
// again for a moment before failing: the informer's own back-off after a
// failed list starts at most a second, which every engine start would pay.
func (s *Subscriber) list(resource string) (protocol.FeedList, error) {
	deadline := time.Now().Add(noResponderPatience)
	for {
		list, err := bus.Request[protocol.FeedListRequest, protocol.FeedList](context.Background(), s.conn,
			bus.SubjectFeedList, protocol.FeedListRequest{Resource: resource})
		if errors.Is(err, bus.ErrNoResponders) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			return protocol.FeedList{}, fmt.Errorf("servicefeed: list %s: %w", resource, err)
		}
		return list, nil
	}
}

// position is a list's resourceVersion: where in the feed it stands. The
// informer hands it back to WatchFunc.
func position(epoch string, seq uint64) string { return epoch + "." + strconv.FormatUint(seq, 10) }

// errExpired is what ends a watch that cannot continue from where it is:
// the informer lists again on 410, as against an API server.
func errExpired(why string) *apierrors.StatusError {
	return apierrors.NewResourceExpired("servicefeed: " + why + "; list again")
}

func (s *Subscriber) watch(resource string, k kind, rv string) (watch.Interface, error) {
	epoch, seqStr, ok := strings.Cut(rv, ".")
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if !ok || err != nil {
		// An object's own resourceVersion (the informer re-watching after a
		// watch ended on its own) is no position in the feed.
		return nil, errExpired("resourceVersion " + rv + " is not a feed position")
	}
	w := &feedWatch{resource: resource, kind: k, epoch: epoch, next: seq + 1, ch: make(chan watch.Event, watchBuffer)}
	w.stop = func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.endLocked(w, nil)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchers[w] = true
	for _, ev := range s.history {
		if !s.offerLocked(w, ev) {
			break
		}
	}
	return w, nil
}

// offerLocked hands ev to w if it is the next one w needs, ends w on a gap
// or another epoch, and skips what w's list already held. It reports whether
// w is still open.
func (s *Subscriber) offerLocked(w *feedWatch, ev protocol.FeedEvent) bool {
	if !s.watchers[w] {
		return false
	}
	switch {
	case ev.Epoch != w.epoch:
		s.endLocked(w, errExpired("the control plane restarted"))
		return false
	case ev.Type == "": // a tick: the last Seq sent
		if ev.Seq >= w.next {
			s.endLocked(w, errExpired(fmt.Sprintf("missed events %d to %d", w.next, ev.Seq)))
			return false
		}
		return true
	case ev.Seq < w.next:
		return true // in the list already
	case ev.Seq > w.next:
		s.endLocked(w, errExpired(fmt.Sprintf("missed events %d to %d", w.next, ev.Seq-1)))
		return false
	}
	w.next++
	if ev.Resource != w.resource {
		return true
	}
	obj := w.kind.newObj()
	if err := json.Unmarshal(ev.Object, obj); err != nil {
		s.endLocked(w, errExpired("undecodable event: "+err.Error()))
		return false
	}
	select {
	case w.ch <- watch.Event{Type: watch.EventType(ev.Type), Object: obj}:
		return true
	default:
		s.endLocked(w, errExpired("the watch fell behind"))
		return false
	}
}

// endLocked closes w, first sending err (if any) as the watch's last event.
// When the buffer has no room even for the error, the channel closes alone;
// the informer then watches again from its last object's resourceVersion,
// which WatchFunc answers with 410, so it lists again all the same.
func (s *Subscriber) endLocked(w *feedWatch, err *apierrors.StatusError) {
	if !s.watchers[w] {
		return
	}
	delete(s.watchers, w)
	if err != nil {
		select {
		case w.ch <- watch.Event{Type: watch.Error, Object: &err.ErrStatus}:
		default:
		}
	}
	close(w.ch)
}

// feedWatch is one watch of one resource, continuing the feed from next.
type feedWatch struct {
	resource string
	kind     kind
	epoch    string
	next     uint64
	ch       chan watch.Event
	stop     func()
}

func (w *feedWatch) Stop()                          { w.stop() }
func (w *feedWatch) ResultChan() <-chan watch.Event { return w.ch }

var _ watch.Interface = (*feedWatch)(nil)
