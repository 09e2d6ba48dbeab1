// Package serviceaccount is skiff's ServiceAccount controller, two of
// Kubernetes' controllers in one loop over namespaces: the serviceaccounts
// controller (a ServiceAccount "default" in every active namespace, made
// again when deleted) and the root CA publisher (a ConfigMap
// "kube-root-ca.crt" holding the cluster CA in every namespace, which the
// projected token volume of every pod mounts as ca.crt).
package serviceaccount

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/informer"
)

// Name is the controller's name, as its events' source and in logs.
const Name = "serviceaccount-controller"

// Names of what the controller keeps in every namespace, Kubernetes'.
const (
	DefaultServiceAccount = "default"
	RootCAConfigMap       = "kube-root-ca.crt"
	// rootCAKey is the ConfigMap's key, the file name in pods.
	rootCAKey = "ca.crt"
	// descriptionAnnotation is what Kubernetes' publisher writes on the
	// ConfigMap, word for word.
	descriptionAnnotation = "kubernetes.io/description"
	description           = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
)

// Config of a controller.
type Config struct {
	Client     kubernetes.Interface            // required
	Namespaces coreinformers.NamespaceInformer // required
	// RootCA is the cluster CA (PEM) published in kube-root-ca.crt. Required.
	RootCA []byte
	// Resync replays every namespace now and then. Default 10 minutes.
	Resync time.Duration
	Logger *slog.Logger // default slog.Default()
}

// Controller keeps the default ServiceAccount and the root CA ConfigMap in
// every namespace.
type Controller struct {
	cfg        Config
	namespaces corelisters.NamespaceLister
	sas        corelisters.ServiceAccountLister
	cms        corelisters.ConfigMapLister
	// own are the informers of the two names only (field selectors): the
	// controller never caches other ServiceAccounts or ConfigMaps.
	saFactory, cmFactory informers.SharedInformerFactory
	log                  *slog.Logger
	queue                workqueue.TypedRateLimitingInterface[string]
	loop                 *controller.Loop
}

// New registers the controller's handlers; the caller starts the
// Namespaces informer, Run starts the controller's own.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Namespaces == nil || len(cfg.RootCA) == 0 {
		return nil, errors.New("serviceaccount: Client, Namespaces and RootCA are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Resync == 0 {
		cfg.Resync = 10 * time.Minute
	}
	byName := func(name string) informers.SharedInformerOption {
		return informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		})
	}
	c := &Controller{cfg: cfg, namespaces: cfg.Namespaces.Lister(), log: cfg.Logger.With("controller", Name),
		queue:     controller.NewQueue("serviceaccount"),
		saFactory: informers.NewSharedInformerFactoryWithOptions(cfg.Client, cfg.Resync, byName(DefaultServiceAccount)),
		cmFactory: informers.NewSharedInformerFactoryWithOptions(cfg.Client, cfg.Resync, byName(RootCAConfigMap))}
	saInf, cmInf := c.saFactory.Core().V1().ServiceAccounts(), c.cmFactory.Core().V1().ConfigMaps()
	c.sas, c.cms = saInf.Lister(), cmInf.Lister()
	nsInf := cfg.Namespaces.Informer()
	if _, err := nsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueNamespace,
		UpdateFunc: func(_, cur any) { c.enqueueNamespace(cur) },
	}); err != nil {
		return nil, err
	}
	// A deleted default ServiceAccount or a deleted or edited CA ConfigMap
	// is made again, as upstream's controllers do.
	inNamespace := func(obj any) {
		if m, ok := informer.ObjectOf[metav1.Object](obj); ok {
			c.queue.Add(m.GetNamespace())
		}
	}
	if _, err := saInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: inNamespace}); err != nil {
		return nil, err
	}
	if _, err := cmInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, cur any) { inNamespace(cur) }, DeleteFunc: inNamespace}); err != nil {
		return nil, err
	}
	c.loop = &controller.Loop{Name: Name, Queue: c.queue, Sync: c.sync, Log: c.log,
		Synced: []cache.InformerSynced{nsInf.HasSynced, saInf.Informer().HasSynced, cmInf.Informer().HasSynced}}
	return c, nil
}

// Run starts the controller's informers and works until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	c.saFactory.Start(ctx.Done())
	c.cmFactory.Start(ctx.Done())
	defer c.saFactory.Shutdown()
	defer c.cmFactory.Shutdown()
	c.loop.Run(ctx, workers)
}

func (c *Controller) enqueueNamespace(obj any) {
	if ns, ok := informer.ObjectOf[*corev1.Namespace](obj); ok && active(ns) {
		c.queue.Add(ns.Name)
	}
}

func active(ns *corev1.Namespace) bool {
	return ns.DeletionTimestamp == nil && ns.Status.Phase != corev1.NamespaceTerminating
}

// sync makes what is missing in one namespace. A namespace that began
// terminating meanwhile refuses new objects (403): that is no error.
func (c *Controller) sync(ctx context.Context, name string) error {
	ns, err := c.namespaces.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil || !active(ns) {
		return err
	}
	errSA := c.ensureServiceAccount(ctx, name)
	errCM := c.ensureRootCA(ctx, name)
	return errors.Join(errSA, errCM)
}

func (c *Controller) ensureServiceAccount(ctx context.Context, ns string) error {
	if _, err := c.sas.ServiceAccounts(ns).Get(DefaultServiceAccount); err == nil {
		return nil
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: DefaultServiceAccount, Namespace: ns}}
	_, err := c.cfg.Client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
	if err == nil || apierrors.IsAlreadyExists(err) || terminating(err) {
		return nil
	}
	return fmt.Errorf("create ServiceAccount %s/%s: %w", ns, DefaultServiceAccount, err)
}

func (c *Controller) ensureRootCA(ctx context.Context, ns string) error {
	data := map[string]string{rootCAKey: string(c.cfg.RootCA)}
	cur, err := c.cms.ConfigMaps(ns).Get(RootCAConfigMap)
	if apierrors.IsNotFound(err) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: RootCAConfigMap, Namespace: ns,
			Annotations: map[string]string{descriptionAnnotation: description}}, Data: data}
		_, err = c.cfg.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) || terminating(err) {
			return nil
		}
		return fmt.Errorf("create ConfigMap %s/%s: %w", ns, RootCAConfigMap, err)
	}
	if err != nil {
		return err
	}
	if cur.Data[rootCAKey] == string(c.cfg.RootCA) && len(cur.Data) == 1 && len(cur.BinaryData) == 0 &&
		cur.Annotations[descriptionAnnotation] == description {
		return nil
	}
	cm := cur.DeepCopy()
	cm.Data, cm.BinaryData = data, nil
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[descriptionAnnotation] = description
	if _, err := c.cfg.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil && !terminating(err) {
		return fmt.Errorf("update ConfigMap %s/%s: %w", ns, RootCAConfigMap, err)
	}
	return nil
}

// terminating tells the API's refusal to create in a terminating namespace.
func terminating(err error) bool {
	return apierrors.IsForbidden(err) && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)
}
