// Package server is the control plane's answer to node agents beyond
// pod sync: it writes the pod status and events agents report, and hands
// agents the ConfigMaps and Secrets their pods use. Agents reach the control
// plane only over the bus, so this is the kubelet's API access in skiff.
//
// Every server runs one, leader or not (docs/rationale.md): its answers go
// through the API, and the servers share each node's requests as one NATS
// queue group, so each request is answered once.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

// Config of the node server.
type Config struct {
	Bus    *bus.Conn            // required
	Client kubernetes.Interface // required
	// NodeClient, when set, is a client acting as the node (its
	// system:node:<name> identity): the objects a node asks for
	// (ConfigMaps, Secrets, claims and their volumes) are read with it, so
	// the API's Node authorizer decides as well as this server's own check,
	// and Client needs no access to Secrets. Nil: Client reads them.
	NodeClient func(node string) kubernetes.Interface
	Logger     *slog.Logger
}

// Server serves node agents.
type Server struct {
	cfg    Config
	log    *slog.Logger
	events record.EventBroadcaster
	subs   []*bus.Subscription
	// pods caches the pods bound to each node, to decide which objects a
	// node may read. It is this server's own (not the leader's control
	// loops'), since every server answers nodes.
	pods    cache.Indexer
	factory informers.SharedInformerFactory
	cancel  context.CancelFunc

	mu          sync.Mutex
	recorders   map[string]record.EventRecorder // per node: events come from that node's kubelet
	nodeClients map[string]kubernetes.Interface // per node, from Config.NodeClient
}

// Start serves the status and objects subjects of every node, once its pod
// cache has listed (bounded by ctx).
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Bus == nil || cfg.Client == nil {
		return nil, errors.New("nodeserver: Bus and Client are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "nodeserver"), recorders: map[string]record.EventRecorder{},
		nodeClients: map[string]kubernetes.Interface{}}
	s.events = record.NewBroadcaster()
	s.events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cfg.Client.CoreV1().Events("")})
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.factory = informers.NewSharedInformerFactory(cfg.Client, 0)
	inf := s.factory.Core().V1().Pods().Informer()
	if err := inf.AddIndexers(cache.Indexers{controller.NodeNameIndex: controller.IndexByNodeName}); err != nil {
		s.Stop()
		return nil, fmt.Errorf("nodeserver: %w", err)
	}
	s.pods = inf.GetIndexer()
	s.factory.Start(runCtx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		s.Stop()
		return nil, fmt.Errorf("nodeserver: pod informer did not sync: %w", ctx.Err())
	}
	status, err := bus.ServeNode(context.Background(), cfg.Bus, bus.SubjectNodeStatusAny, "nodeserver", s.status)
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("nodeserver: serve status: %w", err)
	}
	s.subs = append(s.subs, status)
	objects, err := bus.ServeNode(context.Background(), cfg.Bus, bus.SubjectNodeObjectsAny, "nodeserver", s.object)
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("nodeserver: serve objects: %w", err)
	}
	s.subs = append(s.subs, objects)
	return s, nil
}

// Stop ends serving and flushes queued events.
func (s *Server) Stop() {
	for _, sub := range s.subs {
		sub.Stop()
	}
	s.subs = nil
	s.cancel()
	s.factory.Shutdown()
	s.events.Shutdown()
}

func (s *Server) recorder(node string) record.EventRecorder {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recorders[node]
	if r == nil {
		r = s.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: node})
		s.recorders[node] = r
	}
	return r
}

// status writes a node's batch: each pod's status (if the pod is still the
// one the agent runs and still bound there), the deletions it completes,
// then its events. node is the one the subject names: the bus lets only
// that node's identity publish there (bus.NodeOfSubject), so a node writes
// the status of its own pods only, whatever its report says.
func (s *Server) status(ctx context.Context, node string, rep protocol.StatusReport) (protocol.StatusAck, error) {
	if rep.Node != node {
		return protocol.StatusAck{}, fmt.Errorf("node %s may not report for node %q", node, rep.Node)
	}
	var ack protocol.StatusAck
	var errs []error
	for _, ps := range rep.Pods {
		gone, err := s.writeStatus(ctx, rep.Node, ps)
		if gone {
			ack.Gone = append(ack.Gone, ps.UID)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	rec := s.recorder(rep.Node)
	for _, ev := range rep.Events {
		ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: ev.Namespace, Name: ev.Pod,
			UID: types.UID(ev.UID), FieldPath: ev.FieldPath}
		rec.Event(ref, ev.Type, ev.Reason, ev.Message)
	}
	if len(errs) > 0 {
		return ack, fmt.Errorf("pod status of node %s: %w", rep.Node, errors.Join(errs...))
	}
	return ack, nil
}

// writeStatus reports gone=true when the pod no longer exists as the agent
// knows it, so the agent can forget it.
// The write is made as the node (Config.NodeClient), so the API's Node
// authorizer holds it to the node's own pods as well.
func (s *Server) writeStatus(ctx context.Context, node string, ps protocol.PodStatus) (gone bool, err error) {
	pods := s.nodeClient(node).CoreV1().Pods(ps.Namespace)
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := pods.Get(ctx, ps.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if string(cur.UID) != ps.UID || cur.Spec.NodeName != node {
			return true, nil
		}
		next := cur.DeepCopy()
		next.Status = mergeStatus(cur.Status, ps.Status)
		if !equalStatus(cur.Status, next.Status) {
			err = retryForbidden(ctx, func() error {
				_, err := pods.UpdateStatus(ctx, next, metav1.UpdateOptions{})
				return err
			})
			if apierrors.IsConflict(err) {
				continue
			}
			if err != nil {
				return false, fmt.Errorf("update status of %s/%s: %w", ps.Namespace, ps.Name, err)
			}
		}
		if ps.Terminated && cur.DeletionTimestamp != nil {
			uid := cur.UID
			err := retryForbidden(ctx, func() error {
				return pods.Delete(ctx, ps.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64),
					Preconditions: &metav1.Preconditions{UID: &uid}})
			})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return false, fmt.Errorf("complete deletion of %s/%s: %w", ps.Namespace, ps.Name, err)
			}
			return true, nil
		}
		return false, nil
	}
	return false, fmt.Errorf("update status of %s/%s: too many conflicts", ps.Namespace, ps.Name)
}

// mergeStatus takes what the node reports and keeps what others own: the
// conditions the node does not report (PodScheduled from the scheduler,
// DisruptionTarget), and the nominated node.
func mergeStatus(cur, node corev1.PodStatus) corev1.PodStatus {
	out := node
	out.NominatedNodeName = cur.NominatedNodeName
	reported := map[corev1.PodConditionType]bool{}
	for _, c := range node.Conditions {
		reported[c.Type] = true
	}
	var conds []corev1.PodCondition
	for _, c := range cur.Conditions {
		if !reported[c.Type] {
			conds = append(conds, c)
		}
	}
	for _, c := range node.Conditions {
		// Keep the transition time of a condition whose status is unchanged.
		for _, old := range cur.Conditions {
			if old.Type == c.Type && old.Status == c.Status && !old.LastTransitionTime.IsZero() {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		conds = append(conds, c)
	}
	out.Conditions = conds
	if out.QOSClass == "" {
		out.QOSClass = cur.QOSClass
	}
	return out
}

func equalStatus(a, b corev1.PodStatus) bool {
	ea, err1 := a.Marshal()
	eb, err2 := b.Marshal()
	return err1 == nil && err2 == nil && string(ea) == string(eb)
}

// object hands a node a ConfigMap or Secret, only if a pod bound to it
// uses it: a node reads what its pods need and nothing else, as
// Kubernetes' node authorizer allows. node is the one the subject names,
// which is the asking connection's identity (bus.NodeOfSubject), not a name
// in the request: a request for another node is refused.
func (s *Server) object(ctx context.Context, node string, req protocol.ObjectRequest) (protocol.ObjectResponse, error) {
	if req.Node != node {
		return protocol.ObjectResponse{}, fmt.Errorf("node %s may not ask for node %q's objects", node, req.Node)
	}
	if req.Kind == "LocalVolumes" {
		paths, err := s.localVolumePaths(ctx, req.Node)
		return protocol.ObjectResponse{LocalVolumePaths: paths}, err
	}
	if req.Kind == "ServiceAccountToken" {
		return s.podToken(ctx, req)
	}
	ok, err := s.referenced(ctx, req)
	if err != nil {
		return protocol.ObjectResponse{}, err
	}
	if !ok {
		return protocol.ObjectResponse{}, fmt.Errorf("node %s may not read %s %s/%s: no pod bound to it uses it",
			req.Node, strings.ToLower(req.Kind), req.Namespace, req.Name)
	}
	var resp protocol.ObjectResponse
	c := s.nodeClient(req.Node)
	switch req.Kind {
	case "ConfigMap":
		err = retryForbidden(ctx, func() (err error) {
			resp.ConfigMap, err = c.CoreV1().ConfigMaps(req.Namespace).Get(ctx, req.Name, metav1.GetOptions{})
			return err
		})
	case "Secret":
		err = retryForbidden(ctx, func() (err error) {
			resp.Secret, err = c.CoreV1().Secrets(req.Namespace).Get(ctx, req.Name, metav1.GetOptions{})
			return err
		})
	case "PersistentVolumeClaim":
		err = retryForbidden(ctx, func() (err error) {
			resp.PersistentVolume, err = s.claimVolume(ctx, c, req)
			return err
		})
	default:
		return resp, fmt.Errorf("nodeserver: kind %q is not served to nodes", req.Kind)
	}
	if apierrors.IsNotFound(err) {
		return protocol.ObjectResponse{NotFound: true}, nil
	}
	return resp, err
}

// referenced says whether a pod bound to the node uses the object. The
// cache answers yes; its no is checked with the API, since the node may
// have heard of a pod (from the leader's dispatcher) before this server's
// cache did.
func (s *Server) referenced(ctx context.Context, req protocol.ObjectRequest) (bool, error) {
	objs, err := s.pods.ByIndex(controller.NodeNameIndex, req.Node)
	if err != nil {
		return false, fmt.Errorf("nodeserver: pods of node %s: %w", req.Node, err)
	}
	for _, o := range objs {
		if p := o.(*corev1.Pod); p.Namespace == req.Namespace && podReferences(p, req.Kind, req.Name) {
			return true, nil
		}
	}
	list, err := s.cfg.Client.CoreV1().Pods(req.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", req.Node).String()})
	if err != nil {
		return false, fmt.Errorf("nodeserver: pods of node %s: %w", req.Node, err)
	}
	for i := range list.Items {
		if podReferences(&list.Items[i], req.Kind, req.Name) {
			return true, nil
		}
	}
	return false, nil
}

// podReferences tells whether the pod's spec names the object.
func podReferences(p *corev1.Pod, kind, name string) bool {
	found := false
	visit := func(k, n string) {
		if k == kind && n == name {
			found = true
		}
	}
	for _, s := range p.Spec.ImagePullSecrets {
		visit("Secret", s.Name)
	}
	for _, v := range p.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			visit("PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName)
		case v.ConfigMap != nil:
			visit("ConfigMap", v.ConfigMap.Name)
		case v.Secret != nil:
			visit("Secret", v.Secret.SecretName)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.ConfigMap != nil {
					visit("ConfigMap", src.ConfigMap.Name)
				}
				if src.Secret != nil {
					visit("Secret", src.Secret.Name)
				}
			}
		}
	}
	all := append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...)
	for _, c := range all {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				visit("ConfigMap", e.ConfigMapRef.Name)
			}
			if e.SecretRef != nil {
				visit("Secret", e.SecretRef.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if e.ValueFrom.ConfigMapKeyRef != nil {
				visit("ConfigMap", e.ValueFrom.ConfigMapKeyRef.Name)
			}
			if e.ValueFrom.SecretKeyRef != nil {
				visit("Secret", e.ValueFrom.SecretKeyRef.Name)
			}
		}
	}
	return found
}

// nodeClient is the client that reads objects for node.
func (s *Server) nodeClient(node string) kubernetes.Interface {
	if s.cfg.NodeClient == nil {
		return s.cfg.Client
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.nodeClients[node]
	if c == nil {
		c = s.cfg.NodeClient(node)
		s.nodeClients[node] = c
	}
	return c
}

// Bounds of retryForbidden.
const (
	forbiddenRetries = 20
	forbiddenBackoff = 50 * time.Millisecond
)

// retryForbidden retries a request the API refused: this server found the
// node's pod (bound to it, or using the object), so a 403 means the API's
// Node authorizer has not seen that pod yet (its cache is another watch);
// it catches up within milliseconds. Bounded to about a second.
func retryForbidden(ctx context.Context, read func() error) error {
	var err error
	for i := 0; i < forbiddenRetries; i++ {
		if err = read(); !apierrors.IsForbidden(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(forbiddenBackoff):
		}
	}
	return err
}

// claimVolume is the volume bound to the claim, if it may be used on the
// asking node (its node affinity, if any, matches the node).
func (s *Server) claimVolume(ctx context.Context, c kubernetes.Interface, req protocol.ObjectRequest) (*corev1.PersistentVolume, error) {
	pvc, err := c.CoreV1().PersistentVolumeClaims(req.Namespace).Get(ctx, req.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if pvc.Spec.VolumeName == "" || pvc.Status.Phase != corev1.ClaimBound {
		return nil, fmt.Errorf("persistentvolumeclaim %s/%s is not bound yet", req.Namespace, req.Name)
	}
	pv, err := c.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("persistentvolume %s of claim %s/%s: %w", pvc.Spec.VolumeName, req.Namespace, req.Name, err)
	} else if err != nil {
		return nil, err
	}
	if ref := pv.Spec.ClaimRef; ref == nil || ref.Namespace != pvc.Namespace || ref.Name != pvc.Name {
		return nil, fmt.Errorf("persistentvolume %s is not bound to claim %s/%s", pv.Name, req.Namespace, req.Name)
	}
	if na := pv.Spec.NodeAffinity; na != nil && na.Required != nil {
		node, err := s.cfg.Client.CoreV1().Nodes().Get(ctx, req.Node, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", req.Node, err)
		}
		if ok, err := corev1helpers.MatchNodeSelectorTerms(node, na.Required); err != nil || !ok {
			return nil, fmt.Errorf("persistentvolume %s is not on node %s", pv.Name, req.Node)
		}
	}
	return pv, nil
}

// localVolumePaths are the local paths of the PersistentVolumes whose node
// affinity names node: what the node keeps of its local-volumes directory.
func (s *Server) localVolumePaths(ctx context.Context, node string) ([]string, error) {
	n, err := s.cfg.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", node, err)
	}
	list, err := s.cfg.Client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list persistent volumes: %w", err)
	}
	var out []string
	for i := range list.Items {
		pv := &list.Items[i]
		if pv.Spec.Local == nil || pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
			continue
		}
		if ok, err := corev1helpers.MatchNodeSelectorTerms(n, pv.Spec.NodeAffinity.Required); err == nil && ok {
			out = append(out, pv.Spec.Local.Path)
		}
	}
	return out, nil
}

// podToken mints the token of a pod's projected serviceAccountToken volume,
// through the TokenRequest API as a kubelet asks for it: bound to the pod,
// for the pod's ServiceAccount. As Kubernetes' node authorizer allows, a
// node gets tokens only for pods bound to it: the pod is read from the API
// (not the cache) and must be on the asking node with the UID asked for.
func (s *Server) podToken(ctx context.Context, req protocol.ObjectRequest) (protocol.ObjectResponse, error) {
	pod, err := s.cfg.Client.CoreV1().Pods(req.Namespace).Get(ctx, req.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return protocol.ObjectResponse{NotFound: true}, nil
	}
	if err != nil {
		return protocol.ObjectResponse{}, fmt.Errorf("nodeserver: pod %s/%s: %w", req.Namespace, req.Name, err)
	}
	if pod.Spec.NodeName != req.Node || string(pod.UID) != req.UID {
		return protocol.ObjectResponse{}, fmt.Errorf("node %s may not get a token for pod %s/%s: it is not bound to the node",
			req.Node, req.Namespace, req.Name)
	}
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}}}
	if req.Audience != "" {
		tr.Spec.Audiences = []string{req.Audience}
	}
	if req.ExpirationSeconds > 0 {
		tr.Spec.ExpirationSeconds = &req.ExpirationSeconds
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	// Minted as the node, as a kubelet asks: the Node authorizer allows a
	// token only for a pod bound to the node, and the node server's own
	// identity holds no right to mint tokens.
	var out *authnv1.TokenRequest
	err = retryForbidden(ctx, func() (err error) {
		out, err = s.nodeClient(req.Node).CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, tr, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return protocol.ObjectResponse{}, fmt.Errorf("nodeserver: token for pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return protocol.ObjectResponse{Token: out.Status.Token, TokenExpiration: out.Status.ExpirationTimestamp.Time}, nil
}
