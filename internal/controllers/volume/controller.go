// Package volume is skiff's local-path provisioner and claim binder: for a
// PersistentVolumeClaim of a class whose provisioner is skiff.dev/local-path,
// once the scheduler has chosen the node of its first pod (the annotation
// volume.kubernetes.io/selected-node, WaitForFirstConsumer binding), it
// creates a PersistentVolume on that node (spec.local: a directory under the
// node's data directory, node affinity to the node, capacity as requested)
// and binds claim and volume to each other, as Kubernetes' external
// provisioners and its PV controller do together. A bound volume whose claim
// is gone is Released; with reclaimPolicy Delete it is deleted, with Retain
// kept.
//
// The directory itself is made by the node's agent when a pod first mounts
// the claim; the agent knows its data directory and publishes it on its Node
// (LocalVolumesDirAnnotation).
package volume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	storageinformers "k8s.io/client-go/informers/storage/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/informer"
)

// Name is the controller's name, as its events' source.
const Name = "persistentvolume-controller"

const (
	// Provisioner is the provisioner this controller serves.
	Provisioner = "skiff.dev/local-path"
	// SelectedNodeAnnotation is set on a claim by the scheduler: the node
	// of its first pod, where a WaitForFirstConsumer volume is made.
	SelectedNodeAnnotation = "volume.kubernetes.io/selected-node"
	// LocalVolumesDirAnnotation is set on its Node by the agent: the
	// directory under which its local volumes live. The agent keeps the
	// same key (agents link no controller).
	LocalVolumesDirAnnotation = "skiff.dev/local-volumes-dir"
	// provisionedByAnnotation marks the volumes this controller made, as
	// Kubernetes' provisioners do.
	provisionedByAnnotation = "pv.kubernetes.io/provisioned-by"
	// boundByControllerAnnotation and bindCompletedAnnotation are the
	// PV controller's marks on a claim it bound.
	bindCompletedAnnotation     = "pv.kubernetes.io/bind-completed"
	boundByControllerAnnotation = "pv.kubernetes.io/bound-by-controller"
)

// Config of a controller.
type Config struct {
	Client         kubernetes.Interface                        // required
	Claims         coreinformers.PersistentVolumeClaimInformer // required
	Volumes        coreinformers.PersistentVolumeInformer      // required
	Nodes          coreinformers.NodeInformer                  // required
	StorageClasses storageinformers.StorageClassInformer       // required
	Recorder       record.EventRecorder                        // required
	Logger         *slog.Logger                                // default slog.Default()
}

// Controller provisions and binds local volumes. Claims and volumes share
// one queue: a claim's key is "claim/<ns>/<name>", a volume's
// "volume/<name>".
type Controller struct {
	client   kubernetes.Interface
	claims   corelisters.PersistentVolumeClaimLister
	volumes  corelisters.PersistentVolumeLister
	nodes    corelisters.NodeLister
	classes  storagelisters.StorageClassLister
	recorder record.EventRecorder
	log      *slog.Logger
	queue    workqueue.TypedRateLimitingInterface[string]
	loop     *controller.Loop
}

// New registers the controller's handlers on the informers, which the
// caller starts.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Claims == nil || cfg.Volumes == nil || cfg.Nodes == nil || cfg.StorageClasses == nil || cfg.Recorder == nil {
		return nil, errors.New("volume: Client, Claims, Volumes, Nodes, StorageClasses and Recorder are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{client: cfg.Client, claims: cfg.Claims.Lister(), volumes: cfg.Volumes.Lister(),
		nodes: cfg.Nodes.Lister(), classes: cfg.StorageClasses.Lister(), recorder: cfg.Recorder,
		log: cfg.Logger.With("controller", Name), queue: controller.NewQueue("volume")}
	claimInf, volInf := cfg.Claims.Informer(), cfg.Volumes.Informer()
	enqueueClaim := func(obj any) {
		if key := controller.KeyOf(obj); key != "" {
			c.queue.Add("claim/" + key)
		}
	}
	enqueueVolume := func(obj any) {
		if key := controller.KeyOf(obj); key != "" {
			c.queue.Add("volume/" + key)
		}
	}
	if _, err := claimInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueClaim, UpdateFunc: func(_, cur any) { enqueueClaim(cur) },
		DeleteFunc: func(obj any) {
			// Its volume is released.
			if pvc, ok := informer.ObjectOf[*corev1.PersistentVolumeClaim](obj); ok && pvc.Spec.VolumeName != "" {
				c.queue.Add("volume/" + pvc.Spec.VolumeName)
			}
		},
	}); err != nil {
		return nil, err
	}
	if _, err := volInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueVolume, UpdateFunc: func(_, cur any) { enqueueVolume(cur) },
	}); err != nil {
		return nil, err
	}
	c.loop = &controller.Loop{Name: Name, Queue: c.queue, Sync: c.sync, Log: c.log,
		Synced: []cache.InformerSynced{claimInf.HasSynced, volInf.HasSynced,
			cfg.Nodes.Informer().HasSynced, cfg.StorageClasses.Informer().HasSynced}}
	return c, nil
}

// Run works until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) { c.loop.Run(ctx, workers) }

func (c *Controller) sync(ctx context.Context, key string) error {
	switch {
	case len(key) > len("claim/") && key[:len("claim/")] == "claim/":
		ns, name, err := cache.SplitMetaNamespaceKey(key[len("claim/"):])
		if err != nil {
			return nil
		}
		pvc, err := c.claims.PersistentVolumeClaims(ns).Get(name)
		if apierrors.IsNotFound(err) {
			return nil
		} else if err != nil {
			return err
		}
		return c.syncClaim(ctx, pvc)
	case len(key) > len("volume/") && key[:len("volume/")] == "volume/":
		pv, err := c.volumes.Get(key[len("volume/"):])
		if apierrors.IsNotFound(err) {
			return nil
		} else if err != nil {
			return err
		}
		return c.syncVolume(ctx, pv)
	}
	return nil
}

// class is the claim's StorageClass if this controller provisions it.
func (c *Controller) class(pvc *corev1.PersistentVolumeClaim) *storagev1.StorageClass {
	if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName == "" {
		return nil
	}
	sc, err := c.classes.Get(*pvc.Spec.StorageClassName)
	if err != nil || sc.Provisioner != Provisioner {
		return nil
	}
	return sc
}

// VolumeName is the name of the volume provisioned for a claim.
func VolumeName(pvc *corev1.PersistentVolumeClaim) string { return "pvc-" + string(pvc.UID) }

// syncClaim provisions the claim's volume once its node is chosen, and
// binds the two.
func (c *Controller) syncClaim(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	if pvc.DeletionTimestamp != nil {
		return nil
	}
	if pvc.Spec.VolumeName != "" {
		pv, err := c.volumes.Get(pvc.Spec.VolumeName)
		if apierrors.IsNotFound(err) {
			return nil // Lost: Kubernetes marks it so; nothing to do here
		} else if err != nil {
			return err
		}
		return c.bind(ctx, pvc, pv)
	}
	sc := c.class(pvc)
	if sc == nil {
		return nil
	}
	node := pvc.Annotations[SelectedNodeAnnotation]
	if node == "" && (sc.VolumeBindingMode == nil || *sc.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer) {
		return nil // waiting for the scheduler
	}
	if node == "" {
		// Immediate binding: a local volume needs a node; take the first
		// Ready one, by name.
		n, err := c.anyReadyNode()
		if err != nil {
			return err
		}
		node = n
	}
	pv, err := c.volumes.Get(VolumeName(pvc))
	if apierrors.IsNotFound(err) {
		if pv, err = c.provision(ctx, pvc, sc, node); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	return c.bind(ctx, pvc, pv)
}

func (c *Controller) anyReadyNode() (string, error) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return "", err
	}
	best := ""
	for _, n := range nodes {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue && (best == "" || n.Name < best) {
				best = n.Name
			}
		}
	}
	if best == "" {
		return "", errors.New("no Ready node for a local volume")
	}
	return best, nil
}

// provision creates the claim's volume on node.
func (c *Controller) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass, node string) (*corev1.PersistentVolume, error) {
	n, err := c.nodes.Get(node)
	if err != nil {
		return nil, fmt.Errorf("node %s of claim %s/%s: %w", node, pvc.Namespace, pvc.Name, err)
	}
	dir := n.Annotations[LocalVolumesDirAnnotation]
	if dir == "" {
		c.recorder.Eventf(pvc, corev1.EventTypeWarning, "ProvisioningFailed", "node %s has no local volumes directory", node)
		return nil, fmt.Errorf("node %s has no %s annotation", node, LocalVolumesDirAnnotation)
	}
	reclaim := corev1.PersistentVolumeReclaimDelete
	if sc.ReclaimPolicy != nil {
		reclaim = *sc.ReclaimPolicy
	}
	name := VolumeName(pvc)
	fs := corev1.PersistentVolumeFilesystem
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{provisionedByAnnotation: Provisioner}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              sc.Name,
			VolumeMode:                    &fs,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: path.Join(dir, name)}},
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
			}}}},
			MountOptions: sc.MountOptions,
		},
	}
	created, err := c.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return c.client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		c.recorder.Eventf(pvc, corev1.EventTypeWarning, "ProvisioningFailed", "create volume %s: %v", name, err)
		return nil, fmt.Errorf("create volume %s: %w", name, err)
	}
	c.recorder.Eventf(pvc, corev1.EventTypeNormal, "ProvisioningSucceeded", "Successfully provisioned volume %s on node %s", name, node)
	c.log.Info("provisioned", "claim", pvc.Namespace+"/"+pvc.Name, "volume", name, "node", node)
	return created, nil
}

// bind makes claim and volume name each other and both Bound.
func (c *Controller) bind(ctx context.Context, pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume) error {
	if ref := pv.Spec.ClaimRef; ref == nil || ref.Namespace != pvc.Namespace || ref.Name != pvc.Name || (ref.UID != "" && ref.UID != pvc.UID) {
		return nil // the volume is someone else's
	}
	if pv.Status.Phase != corev1.VolumeBound {
		cp := pv.DeepCopy()
		cp.Status.Phase = corev1.VolumeBound
		if _, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("volume %s Bound: %w", pv.Name, err)
		}
	}
	cur := pvc
	if pvc.Spec.VolumeName != pv.Name || pvc.Annotations[bindCompletedAnnotation] != "yes" {
		cp := pvc.DeepCopy()
		cp.Spec.VolumeName = pv.Name
		if cp.Annotations == nil {
			cp.Annotations = map[string]string{}
		}
		cp.Annotations[bindCompletedAnnotation] = "yes"
		cp.Annotations[boundByControllerAnnotation] = "yes"
		updated, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("bind claim %s/%s to %s: %w", pvc.Namespace, pvc.Name, pv.Name, err)
		}
		cur = updated
	}
	if cur.Status.Phase != corev1.ClaimBound {
		cp := cur.DeepCopy()
		cp.Status.Phase = corev1.ClaimBound
		cp.Status.AccessModes = pv.Spec.AccessModes
		cp.Status.Capacity = pv.Spec.Capacity
		if _, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("claim %s/%s Bound: %w", pvc.Namespace, pvc.Name, err)
		}
	}
	return nil
}

// syncVolume releases a bound volume whose claim is gone, and reclaims it:
// Delete deletes it, Retain keeps it Released.
func (c *Controller) syncVolume(ctx context.Context, pv *corev1.PersistentVolume) error {
	ref := pv.Spec.ClaimRef
	if ref == nil || pv.DeletionTimestamp != nil {
		return nil
	}
	pvc, err := c.claims.PersistentVolumeClaims(ref.Namespace).Get(ref.Name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err == nil && (ref.UID == "" || pvc.UID == ref.UID) {
		if pvc.Spec.VolumeName == pv.Name || pvc.Spec.VolumeName == "" {
			c.queue.Add("claim/" + controller.KeyOf(pvc))
		}
		return nil
	}
	// Not in the cache: ask the API before letting the volume go.
	live, err := c.client.CoreV1().PersistentVolumeClaims(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err == nil && (ref.UID == "" || live.UID == ref.UID) {
		return nil
	} else if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete && pv.Annotations[provisionedByAnnotation] == Provisioner {
		err := c.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete volume %s: %w", pv.Name, err)
		}
		c.log.Info("deleted released volume", "volume", pv.Name)
		return nil
	}
	if pv.Status.Phase != corev1.VolumeReleased {
		cp := pv.DeepCopy()
		cp.Status.Phase = corev1.VolumeReleased
		if _, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("volume %s Released: %w", pv.Name, err)
		}
	}
	return nil
}
