// Package servicefeed carries the cluster-wide objects a node's networking
// follows — Services and EndpointSlices for the Service proxy;
// NetworkPolicies, Namespaces and Pods for network policy — from the
// control plane to every node over the bus, so a node needs no API access
// for them: agents reach the control plane only through the bus
// (DESIGN.md), and a worker serves ClusterIPs and NodePorts, and enforces
// policy, as a server does.
//
// Pods travel stripped to what policy reads (StripPod): every pod change
// reaches every node, so the feed carries a pod's identity, labels,
// container ports, phase and addresses, and publishes a change only when
// one of those changed (not for every status or condition update).
//
// The control plane's Publisher watches the API and publishes each change
// as a numbered event to all nodes at once, and answers full lists. A
// node's Subscriber turns the feed back into client-go ListerWatchers, so
// the node side runs ordinary shared informers: a missed event, a new
// control plane (another epoch) or a full buffer ends the watch with 410
// Gone, and the informer lists again, exactly as against an API server
// that compacted its history.
package servicefeed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/skiffhq/skiff/internal/informer"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

// The resources the feed carries, as FeedEvent.Resource names them.
const (
	Services        = "services"
	EndpointSlices  = "endpointslices"
	NetworkPolicies = "networkpolicies"
	Namespaces      = "namespaces"
	Pods            = "pods"
)

// PublisherConfig configures the control plane's side.
type PublisherConfig struct {
	Bus    *bus.Conn            // required
	Client kubernetes.Interface // required
	// TickInterval is how often the last Seq is repeated, bounding how
	// long a node that missed the last event stays unaware of it. Default
	// 5s.
	TickInterval time.Duration
	Logger       *slog.Logger
}

// Publisher is the running control-plane side of the feed. Run one per
// cluster (on the raft leader): two publishers would interleave two
// epochs, and every node would keep listing again.
type Publisher struct {
	cfg   PublisherConfig
	log   *slog.Logger
	epoch string

	mu     sync.Mutex // orders publishing, so Seq leaves in order and lists match it
	seq    uint64
	stores map[string]cache.Store

	sub    *bus.Subscription
	cancel context.CancelFunc
	done   chan struct{}
}

// StartPublisher watches the feed's resources and, once its
// informers have synced (bounded by ctx), publishes their changes and
// answers list requests.
func StartPublisher(ctx context.Context, cfg PublisherConfig) (*Publisher, error) {
	if cfg.Bus == nil || cfg.Client == nil {
		return nil, errors.New("servicefeed: Bus and Client are required")
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := make([]byte, 8)
	rand.Read(b)
	p := &Publisher{cfg: cfg, log: cfg.Logger.With("component", "servicefeed"), epoch: hex.EncodeToString(b),
		stores: map[string]cache.Store{}, done: make(chan struct{})}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel

	factory := informers.NewSharedInformerFactory(cfg.Client, 0)
	infs := map[string]cache.SharedIndexInformer{
		Services:        factory.Core().V1().Services().Informer(),
		EndpointSlices:  factory.Discovery().V1().EndpointSlices().Informer(),
		NetworkPolicies: factory.Networking().V1().NetworkPolicies().Informer(),
		Namespaces:      factory.Core().V1().Namespaces().Informer(),
		Pods:            factory.Core().V1().Pods().Informer(),
	}
	// The publisher keeps pods as it sends them: smaller, and an update
	// that changed nothing the feed carries compares equal.
	if err := infs[Pods].SetTransform(stripPodTransform); err != nil {
		cancel()
		return nil, fmt.Errorf("servicefeed: %w", err)
	}
	var synced []cache.InformerSynced
	for res, inf := range infs {
		p.stores[res] = inf.GetStore()
		synced = append(synced, inf.HasSynced)
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(o any) { p.publish(res, watch.Added, o) },
			UpdateFunc: func(old, o any) {
				if res == Pods && samePod(old, o) {
					return
				}
				p.publish(res, watch.Modified, o)
			},
			DeleteFunc: func(o any) {
				if obj, ok := informer.ObjectOf[any](o); ok {
					p.publish(res, watch.Deleted, obj)
				}
			},
		}); err != nil {
			cancel()
			return nil, fmt.Errorf("servicefeed: %w", err)
		}
	}
	factory.Start(runCtx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		cancel()
		factory.Shutdown()
		return nil, fmt.Errorf("servicefeed: informers did not sync: %w", ctx.Err())
	}
	sub, err := bus.Serve(runCtx, cfg.Bus, bus.SubjectFeedList, "servicefeed", p.list)
	if err != nil {
		cancel()
		factory.Shutdown()
		return nil, fmt.Errorf("servicefeed: %w", err)
	}
	p.sub = sub
	go func() {
		defer close(p.done)
		t := time.NewTicker(cfg.TickInterval)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				factory.Shutdown()
				return
			case <-t.C:
				p.tick()
			}
		}
	}()
	return p, nil
}

// Stop ends the publisher.
func (p *Publisher) Stop() {
	p.sub.Stop()
	p.cancel()
	<-p.done
}

// publish numbers and sends one change. Informer handlers of one informer
// run one at a time; the lock orders the two informers' events.
func (p *Publisher) publish(res string, typ watch.EventType, o any) {
	raw, err := json.Marshal(o)
	if err != nil {
		p.log.Error("feed object not encodable", "resource", res, "err", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	p.send(protocol.FeedEvent{Epoch: p.epoch, Seq: p.seq, Type: string(typ), Resource: res, Object: raw})
}

func (p *Publisher) tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.send(protocol.FeedEvent{Epoch: p.epoch, Seq: p.seq})
}

// send publishes ev; the caller holds p.mu, so a list answer's Seq never
// runs ahead of what was sent. A lost event is found by the nodes at the
// next event or tick, and they list again.
func (p *Publisher) send(ev protocol.FeedEvent) {
	if err := bus.Publish(context.Background(), p.cfg.Bus, bus.SubjectFeedEvents, ev); err != nil {
		p.log.Warn("feed event not sent; nodes will list again at the next tick", "seq", ev.Seq, "err", err)
	}
}

// list answers a node's full list of one resource.
func (p *Publisher) list(_ context.Context, req protocol.FeedListRequest) (protocol.FeedList, error) {
	store, ok := p.stores[req.Resource]
	if !ok {
		return protocol.FeedList{}, fmt.Errorf("servicefeed: no resource %q in the feed", req.Resource)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	objs := store.List()
	resp := protocol.FeedList{Epoch: p.epoch, Seq: p.seq, Items: make([]json.RawMessage, 0, len(objs))}
	for _, o := range objs {
		raw, err := json.Marshal(o)
		if err != nil {
			return protocol.FeedList{}, fmt.Errorf("servicefeed: encode %s: %w", req.Resource, err)
		}
		resp.Items = append(resp.Items, raw)
	}
	return resp, nil
}

// StripPod is pod as the feed carries it: what NetworkPolicy reads of a
// pod (its identity and labels, which select it; its containers' ports,
// which named ports name; its phase and addresses, which make it a peer)
// and no more. Whatever else a node needs of its own pods comes with them
// from the dispatcher.
func StripPod(pod *corev1.Pod) *corev1.Pod {
	out := &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
			ResourceVersion: pod.ResourceVersion, Labels: pod.Labels, DeletionTimestamp: pod.DeletionTimestamp},
		Spec:   corev1.PodSpec{NodeName: pod.Spec.NodeName, HostNetwork: pod.Spec.HostNetwork},
		Status: corev1.PodStatus{Phase: pod.Status.Phase, PodIP: pod.Status.PodIP, PodIPs: pod.Status.PodIPs},
	}
	strip := func(cs []corev1.Container) []corev1.Container {
		var out []corev1.Container
		for _, c := range cs {
			if len(c.Ports) > 0 {
				out = append(out, corev1.Container{Name: c.Name, Ports: c.Ports})
			}
		}
		return out
	}
	out.Spec.Containers = strip(pod.Spec.Containers)
	out.Spec.InitContainers = strip(pod.Spec.InitContainers)
	return out
}

// stripPodTransform is StripPod as an informer's transform; tombstones and
// anything else pass unchanged.
func stripPodTransform(o any) (any, error) {
	if pod, ok := o.(*corev1.Pod); ok {
		return StripPod(pod), nil
	}
	return o, nil
}

// samePod is whether two stripped pods differ only in resourceVersion, so
// the update is none for the feed.
func samePod(a, b any) bool {
	pa, ok1 := a.(*corev1.Pod)
	pb, ok2 := b.(*corev1.Pod)
	if !ok1 || !ok2 {
		return false
	}
	ca, cb := *pa, *pb
	ca.ResourceVersion, cb.ResourceVersion = "", ""
	return equality.Semantic.DeepEqual(&ca, &cb)
}
