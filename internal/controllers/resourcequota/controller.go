// Package resourcequota is skiff's quota controller, in the shape of
// Kubernetes' (pkg/controller/resourcequota): it keeps every
// ResourceQuota's status.hard equal to spec.hard and recounts status.used
// from the objects in the namespace, when a quota changes, when a counted
// object is deleted or ends, and every Resync. The API server's admission
// charges quotas as it admits objects (internal/apiserver/resourcequota.go);
// this controller is what gives usage back when objects go.
//
// Lowering usage races with admission: a request charges the quota and
// stores its object a moment later, so a recount in between would miss
// that object and hand its share out twice. The controller therefore
// lowers a quota's usage only once the quota's resourceVersion has stayed
// the same for Settle (no charge for that long, so every charged object
// is stored); raising usage is always safe and done at once.
package resourcequota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	quotav1 "k8s.io/apiserver/pkg/quota/v1"
	"k8s.io/client-go/dynamic"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/quota"
)

// Name is the controller's name in logs.
const Name = "resourcequota-controller"

// Config of a controller.
type Config struct {
	Client         kubernetes.Interface                        // required: quotas' status, pods, services, claims
	Dynamic        dynamic.Interface                           // required: objects counted by count/<resource>
	Mapper         meta.RESTMapper                             // required: count/<resource>.<group> to its version
	ResourceQuotas coreinformers.ResourceQuotaInformer         // required
	Pods           coreinformers.PodInformer                   // required: a pod's end releases its usage
	Services       coreinformers.ServiceInformer               // optional: a Service's removal releases it
	Claims         coreinformers.PersistentVolumeClaimInformer // optional
	// Counted are informers of more resources counted by
	// count/<resource> (the control plane's Deployments, Jobs, ...): their
	// objects' removal recounts the namespace's quotas at once. Optional.
	Counted []cache.SharedIndexInformer
	// Resync is how often every quota is recounted, for objects whose
	// removal no informer here reports. Default 30 s.
	Resync time.Duration
	// Settle is how long a quota's resourceVersion must stay unchanged
	// before its usage may be lowered (the package comment says why).
	// Default 5 s.
	Settle time.Duration
	Logger *slog.Logger // default slog.Default()
}

// Controller is a quota controller.
type Controller struct {
	cfg    Config
	quotas corelisters.ResourceQuotaLister
	log    *slog.Logger
	queue  workqueue.TypedRateLimitingInterface[string]
	loop   *controller.Loop

	mu   sync.Mutex
	seen map[string]seenVersion // quota key -> when this resourceVersion was first seen
}

type seenVersion struct {
	rv string
	at time.Time
}

// New registers the controller's handlers on the informers, which the
// caller starts.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Dynamic == nil || cfg.Mapper == nil || cfg.ResourceQuotas == nil || cfg.Pods == nil {
		return nil, errors.New("resourcequota: Client, Dynamic, Mapper, ResourceQuotas and Pods are required")
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{cfg: cfg, quotas: cfg.ResourceQuotas.Lister(), log: cfg.Logger.With("controller", Name),
		queue: controller.NewQueue("resourcequota"), seen: map[string]seenVersion{}}
	qInf := cfg.ResourceQuotas.Informer()
	if _, err := qInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue,
		UpdateFunc: func(old, cur any) {
			o, _ := old.(*corev1.ResourceQuota)
			n, _ := cur.(*corev1.ResourceQuota)
			// A charge by admission changes only status.used: nothing to
			// recount. A new spec, or a status that no longer says what
			// the spec asks, is.
			if o == nil || n == nil || !quotav1.Equals(o.Spec.Hard, n.Spec.Hard) || !quotav1.Equals(n.Spec.Hard, n.Status.Hard) {
				c.enqueue(cur)
			}
		},
		DeleteFunc: func(obj any) {
			c.mu.Lock()
			delete(c.seen, controller.KeyOf(obj))
			c.mu.Unlock()
		},
	}); err != nil {
		return nil, err
	}
	synced := []cache.InformerSynced{qInf.HasSynced}
	watch := func(inf cache.SharedIndexInformer, changed func(old, cur any) bool) error {
		_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(old, cur any) {
				if changed(old, cur) {
					c.enqueueNamespaceOf(cur)
				}
			},
			DeleteFunc: c.enqueueNamespaceOf,
		})
		synced = append(synced, inf.HasSynced)
		return err
	}
	if err := watch(cfg.Pods.Informer(), podUsageChanged); err != nil {
		return nil, err
	}
	if cfg.Services != nil {
		if err := watch(cfg.Services.Informer(), func(old, cur any) bool {
			o, _ := old.(*corev1.Service)
			n, _ := cur.(*corev1.Service)
			return o == nil || n == nil || o.Spec.Type != n.Spec.Type || len(o.Spec.Ports) != len(n.Spec.Ports)
		}); err != nil {
			return nil, err
		}
	}
	if cfg.Claims != nil {
		if err := watch(cfg.Claims.Informer(), func(old, cur any) bool {
			o, _ := old.(*corev1.PersistentVolumeClaim)
			n, _ := cur.(*corev1.PersistentVolumeClaim)
			return o == nil || n == nil || !quotav1.Equals(o.Spec.Resources.Requests, n.Spec.Resources.Requests) ||
				!quotav1.Equals(o.Status.AllocatedResources, n.Status.AllocatedResources)
		}); err != nil {
			return nil, err
		}
	}
	for _, inf := range cfg.Counted {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: c.enqueueNamespaceOf}); err != nil {
			return nil, err
		}
		synced = append(synced, inf.HasSynced)
	}
	c.loop = &controller.Loop{Name: Name, Queue: c.queue, Sync: c.sync, Log: c.log, Synced: synced}
	return c, nil
}

// podUsageChanged: a pod's usage changes when it ends or starts
// terminating (Kubernetes' QuotaV1Pod); its resources cannot change.
func podUsageChanged(old, cur any) bool {
	o, _ := old.(*corev1.Pod)
	n, _ := cur.(*corev1.Pod)
	if o == nil || n == nil {
		return true
	}
	terminal := func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	}
	return terminal(o) != terminal(n) || (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil)
}

// Run works until ctx ends; every Resync it recounts every quota.
func (c *Controller) Run(ctx context.Context, workers int) {
	go func() {
		t := time.NewTicker(c.cfg.Resync)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				qs, _ := c.quotas.List(labelsEverything)
				for _, q := range qs {
					c.enqueue(q)
				}
			}
		}
	}()
	c.loop.Run(ctx, workers)
}

func (c *Controller) enqueue(obj any) {
	if key := controller.KeyOf(obj); key != "" {
		c.queue.Add(key)
	}
}

func (c *Controller) enqueueNamespaceOf(obj any) {
	m, err := meta.Accessor(obj)
	if err != nil {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			m, err = meta.Accessor(tomb.Obj)
		}
		if err != nil {
			return
		}
	}
	qs, err := c.quotas.ResourceQuotas(m.GetNamespace()).List(labelsEverything)
	if err != nil {
		return
	}
	for _, q := range qs {
		c.enqueue(q)
	}
}

// sync recounts one quota and writes its status if it changed.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	// A live read, not the cache: the write below is a compare-and-swap
	// against this resourceVersion, so any charge since fails it.
	q, err := c.cfg.Client.CoreV1().ResourceQuotas(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get ResourceQuota %s: %w", key, err)
	}
	used := corev1.ResourceList{}
	for _, gr := range quota.ResourcesOf(q.Spec.Hard) {
		objs, err := c.list(ctx, gr, ns)
		if err != nil {
			return err
		}
		u, err := quota.Usage(q, quota.For(gr), objs)
		if err != nil {
			return fmt.Errorf("usage of %s for ResourceQuota %s: %w", gr, key, err)
		}
		used = quotav1.Add(used, u)
	}
	// Names no resource measures still get a used value, so admission
	// knows the status is computed.
	for n, h := range q.Spec.Hard {
		if _, ok := used[n]; !ok {
			used[n] = zero(h)
		}
	}
	if lowered := c.lower(q, used); lowered > 0 {
		c.queue.AddAfter(key, lowered)
	}
	if quotav1.Equals(q.Status.Hard, q.Spec.Hard) && quotav1.Equals(q.Status.Used, used) {
		return nil
	}
	q = q.DeepCopy()
	q.Status.Hard = q.Spec.Hard.DeepCopy()
	q.Status.Used = used
	if _, err := c.cfg.Client.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status of ResourceQuota %s: %w", key, err)
	}
	return nil
}

// lower keeps, in used, the quota's current usage of every resource the
// recount would lower while the quota has not settled, and returns how
// long until it has (0: settled, used is taken as counted).
func (c *Controller) lower(q *corev1.ResourceQuota, used corev1.ResourceList) time.Duration {
	key := q.Namespace + "/" + q.Name
	now := time.Now()
	c.mu.Lock()
	s, ok := c.seen[key]
	if !ok || s.rv != q.ResourceVersion {
		s = seenVersion{rv: q.ResourceVersion, at: now}
		c.seen[key] = s
	}
	c.mu.Unlock()
	wait := c.cfg.Settle - now.Sub(s.at)
	if wait <= 0 {
		return 0
	}
	held := false
	for n, cur := range q.Status.Used {
		if u, ok := used[n]; ok && u.Cmp(cur) < 0 {
			used[n] = cur.DeepCopy()
			held = true
		}
	}
	if !held {
		return 0
	}
	return wait
}

// list reads gr's objects in ns from the API (not a cache: the count must
// be at least as new as the quota read before it).
func (c *Controller) list(ctx context.Context, gr schema.GroupResource, ns string) ([]runtime.Object, error) {
	var out []runtime.Object
	opts := metav1.ListOptions{}
	switch gr {
	case schema.GroupResource{Resource: "pods"}:
		l, err := c.cfg.Client.CoreV1().Pods(ns).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list pods in %s: %w", ns, err)
		}
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
		return out, nil
	case schema.GroupResource{Resource: "services"}:
		l, err := c.cfg.Client.CoreV1().Services(ns).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list services in %s: %w", ns, err)
		}
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
		return out, nil
	case schema.GroupResource{Resource: "persistentvolumeclaims"}:
		l, err := c.cfg.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list persistentvolumeclaims in %s: %w", ns, err)
		}
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
		return out, nil
	}
	gvr, err := c.cfg.Mapper.ResourceFor(gr.WithVersion(""))
	if err != nil {
		// Not served (yet): nothing of it exists to count.
		c.log.Debug("quota names a resource not served", "resource", gr, "err", err)
		return nil, nil
	}
	l, err := c.cfg.Dynamic.Resource(gvr).Namespace(ns).List(ctx, opts)
	if err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s in %s: %w", gr, ns, err)
	}
	for i := range l.Items {
		out = append(out, &l.Items[i])
	}
	return out, nil
}

var labelsEverything = labels.Everything()

// zero is a zero quantity in h's format ("0", "0Gi" prints as "0").
func zero(h resource.Quantity) resource.Quantity { return *resource.NewQuantity(0, h.Format) }
