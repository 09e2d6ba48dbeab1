// Package dispatch pushes the pods bound to each node to that node's agent
// over the bus, as the control plane's half of pod sync: every change to a
// bound pod becomes a numbered event on the node's pods subject, and an
// agent that missed one asks for the full set on the node's sync subject.
package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/skiffhq/skiff/internal/informer"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

// Config of a dispatcher.
type Config struct {
	Bus *bus.Conn // required
	// Pods is the pod informer the dispatcher watches; the caller starts
	// it. Required.
	Pods   coreinformers.PodInformer
	Logger *slog.Logger
}

// Dispatcher is the control-plane side of pod sync. It runs on the raft
// leader only, one per term of leadership: two dispatchers would each
// number every event from their own epoch, and agents would resync on each
// other's events without end. Its event handler runs on the informer's
// goroutine; Run serves sync requests.
type Dispatcher struct {
	cfg    Config
	log    *slog.Logger
	epoch  string
	pods   cache.Indexer
	synced cache.InformerSynced

	mu  sync.Mutex
	seq map[string]uint64 // per node: the last event sent
}

// New registers the dispatcher's index and event handler on the pod
// informer, which must not have started yet.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Bus == nil || cfg.Pods == nil {
		return nil, errors.New("dispatch: Bus and Pods are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := make([]byte, 8)
	rand.Read(b)
	d := &Dispatcher{cfg: cfg, log: cfg.Logger.With("component", "dispatch"), epoch: hex.EncodeToString(b),
		seq: map[string]uint64{}}
	inf := cfg.Pods.Informer()
	if err := controller.AddNodeNameIndex(inf); err != nil {
		return nil, fmt.Errorf("dispatch: %w", err)
	}
	d.pods, d.synced = inf.GetIndexer(), inf.HasSynced
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { d.send(watch.Added, o) },
		UpdateFunc: func(old, o any) {
			if op, ok := old.(*corev1.Pod); ok && op.Spec.NodeName == "" {
				d.send(watch.Added, o) // just bound: new to its node
				return
			}
			d.send(watch.Modified, o)
		},
		DeleteFunc: func(o any) {
			if pod, ok := informer.ObjectOf[*corev1.Pod](o); ok {
				d.send(watch.Deleted, pod)
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("dispatch: %w", err)
	}
	return d, nil
}

// Run serves full sync requests, once the pod informer has listed (an
// answer from a half-filled cache would make agents stop pods), until ctx
// ends. The error says why it could not serve.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), d.synced) {
		return nil // ended before it began
	}
	sub, err := bus.ServeNode(ctx, d.cfg.Bus, bus.SubjectNodeSyncAny, "dispatch", d.sync)
	if err != nil {
		return fmt.Errorf("dispatch: serve sync: %w", err)
	}
	<-ctx.Done()
	sub.Stop()
	return nil
}

// Epoch identifies this dispatcher instance in its events.
func (d *Dispatcher) Epoch() string { return d.epoch }

// send numbers and publishes one change to a bound pod. Handlers run one at
// a time (the informer's contract), so events leave in order.
func (d *Dispatcher) send(typ watch.EventType, o any) {
	pod, ok := o.(*corev1.Pod)
	if !ok || pod.Spec.NodeName == "" {
		return
	}
	subject, err := bus.SubjectNodePods(pod.Spec.NodeName)
	if err != nil {
		d.log.Warn("pod bound to an unaddressable node", "pod", pod.Namespace+"/"+pod.Name, "node", pod.Spec.NodeName, "err", err)
		return
	}
	d.mu.Lock()
	d.seq[pod.Spec.NodeName]++
	ev := protocol.PodEvent{Epoch: d.epoch, Seq: d.seq[pod.Spec.NodeName], Type: string(typ), Pod: *pod}
	// Publish under the lock, so a concurrent sync answer's Seq never runs
	// ahead of what was sent.
	err = bus.Publish(context.Background(), d.cfg.Bus, subject, ev)
	d.mu.Unlock()
	if err != nil {
		d.log.Warn("pod event not sent; the agent will resync on the gap", "node", pod.Spec.NodeName, "err", err)
	}
}

// sync answers a full sync: every pod bound to the node, as of the last
// event sent. The informer's store may already hold changes whose events
// are still on their way; the agent applies them again harmlessly. node
// is the one the subject names (the requester's identity: see
// bus.NodeOfSubject); a request for another node is refused.
func (d *Dispatcher) sync(ctx context.Context, node string, req protocol.SyncRequest) (protocol.SyncResponse, error) {
	if req.Node != node {
		return protocol.SyncResponse{}, fmt.Errorf("node %s may not sync node %q's pods", node, req.Node)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	objs, err := d.pods.ByIndex(controller.NodeNameIndex, req.Node)
	if err != nil {
		return protocol.SyncResponse{}, err
	}
	resp := protocol.SyncResponse{Epoch: d.epoch, Seq: d.seq[req.Node], Pods: make([]corev1.Pod, 0, len(objs))}
	for _, o := range objs {
		resp.Pods = append(resp.Pods, *o.(*corev1.Pod))
	}
	return resp, nil
}
