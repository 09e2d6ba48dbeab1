// Package node is Kubernetes' Node authorizer with the NodeRestriction
// admission plugin's limits folded in: a node identity
// (system:node:<name> in system:nodes) reads Secrets, ConfigMaps,
// PersistentVolumeClaims, PersistentVolumes and ServiceAccount tokens only
// when a pod bound to it uses them, and writes only its own Node, its own
// Lease and the status of its own pods. What a node may do with everything
// else is a fixed rule list (the system:node role's).
//
// The relationships come from informer caches kept current by watch: pods
// indexed by the node they are bound to, and claims by name, so a decision
// reads the node's pods, never the whole store.
package node

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/authz"
)

// Identity prefix and group of nodes, as Kubernetes names them.
const (
	UserPrefix         = "system:node:"
	Group              = "system:nodes"
	nodeLeaseNamespace = "kube-node-lease"
	byNode             = "spec.nodeName"
)

// NodeName returns the node a user is, if it is one: named
// system:node:<name> and in the system:nodes group.
func NodeName(u user.Info) (string, bool) {
	if u == nil || !strings.HasPrefix(u.GetName(), UserPrefix) {
		return "", false
	}
	for _, g := range u.GetGroups() {
		if g == Group {
			return strings.TrimPrefix(u.GetName(), UserPrefix), true
		}
	}
	return "", false
}

// Authorizer decides requests of node identities and has no opinion on
// anyone else's.
type Authorizer struct {
	pods   cache.Indexer
	claims corelisters.PersistentVolumeClaimLister
	rules  []rbacv1.PolicyRule
	synced []cache.InformerSynced
}

// New builds the authorizer over the factory's pod and claim informers;
// rules are what any node may do beyond the graph (the system:node role).
func New(f informers.SharedInformerFactory, rules []rbacv1.PolicyRule) (*Authorizer, error) {
	pods := f.Core().V1().Pods().Informer()
	if _, ok := pods.GetIndexer().GetIndexers()[byNode]; !ok {
		if err := pods.AddIndexers(cache.Indexers{byNode: indexByNode}); err != nil {
			return nil, fmt.Errorf("node authorizer: %w", err)
		}
	}
	claims := f.Core().V1().PersistentVolumeClaims()
	return &Authorizer{pods: pods.GetIndexer(), claims: claims.Lister(), rules: rules,
		synced: []cache.InformerSynced{pods.HasSynced, claims.Informer().HasSynced}}, nil
}

func indexByNode(obj any) ([]string, error) {
	if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
		return []string{p.Spec.NodeName}, nil
	}
	return nil, nil
}

// HasSynced reports whether the caches have their first list.
func (a *Authorizer) HasSynced() bool {
	for _, s := range a.synced {
		if !s() {
			return false
		}
	}
	return true
}

const noRelationship = "no relationship found between node '%s' and this object"

// Authorize decides a node's request; anyone else's gets no opinion.
// Refusals carry Kubernetes' reasons, which the Forbidden message ends
// with.
func (a *Authorizer) Authorize(_ context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
	node, ok := NodeName(attrs.GetUser())
	if !ok {
		return authorizer.DecisionNoOpinion, "", nil
	}
	if node == "" {
		return authorizer.DecisionNoOpinion, "unknown node", nil
	}
	if !attrs.IsResourceRequest() {
		return a.static(attrs)
	}
	verb, ns, name := attrs.GetVerb(), attrs.GetNamespace(), attrs.GetName()
	switch group, res, sub := attrs.GetAPIGroup(), attrs.GetResource(), attrs.GetSubresource(); {
	case group == "" && sub == "" && (res == "secrets" || res == "configmaps" || res == "persistentvolumeclaims"):
		return a.referenced(node, attrs, func(p *corev1.Pod) bool { return ns == p.Namespace && uses(p, res, name) })
	case group == "" && res == "persistentvolumes" && sub == "":
		return a.referenced(node, attrs, func(p *corev1.Pod) bool { return a.usesVolume(p, name) })
	case group == "" && res == "serviceaccounts" && sub == "token" && verb == "create":
		return a.referenced(node, attrs, func(p *corev1.Pod) bool {
			return ns == p.Namespace && serviceAccount(p) == name
		})
	case group == "" && res == "pods" && (sub == "status" || (sub == "" && verb == "delete")):
		// NodeRestriction: its own pods only.
		return a.referenced(node, attrs, func(p *corev1.Pod) bool { return ns == p.Namespace && p.Name == name })
	case group == "" && res == "nodes" && (verb == "update" || verb == "patch" || verb == "delete"):
		if name != node {
			return authorizer.DecisionNoOpinion, fmt.Sprintf("node '%s' cannot modify node '%s'", node, name), nil
		}
		return authorizer.DecisionAllow, "", nil
	case group == "coordination.k8s.io" && res == "leases":
		if ns != nodeLeaseNamespace || (name != "" && name != node) || verb == "list" || verb == "watch" {
			return authorizer.DecisionNoOpinion, fmt.Sprintf("node '%s' can only access its own lease in namespace %s", node, nodeLeaseNamespace), nil
		}
		return authorizer.DecisionAllow, "", nil
	}
	return a.static(attrs)
}

func (a *Authorizer) static(attrs authorizer.Attributes) (authorizer.Decision, string, error) {
	if authz.RulesAllow(attrs, a.rules...) {
		return authorizer.DecisionAllow, "", nil
	}
	return authorizer.DecisionNoOpinion, "", nil
}

// referenced allows the graph-gated reads (get, and list/watch of one
// object by name) when a pod bound to the node satisfies match.
func (a *Authorizer) referenced(node string, attrs authorizer.Attributes, match func(*corev1.Pod) bool) (authorizer.Decision, string, error) {
	refuse := fmt.Sprintf(noRelationship, node)
	switch attrs.GetVerb() {
	case "get", "list", "watch":
		if attrs.GetResource() == "pods" {
			break
		}
		if attrs.GetName() == "" {
			return authorizer.DecisionNoOpinion, "can only read resources of this type by name", nil
		}
	case "create":
		if attrs.GetSubresource() != "token" {
			return authorizer.DecisionNoOpinion, refuse, nil
		}
	case "update", "patch", "delete":
		if attrs.GetResource() != "pods" {
			return authorizer.DecisionNoOpinion, refuse, nil
		}
	default:
		return authorizer.DecisionNoOpinion, refuse, nil
	}
	objs, err := a.pods.ByIndex(byNode, node)
	if err != nil {
		return authorizer.DecisionNoOpinion, "", fmt.Errorf("pods of node %s: %w", node, err)
	}
	for _, o := range objs {
		if match(o.(*corev1.Pod)) {
			return authorizer.DecisionAllow, "", nil
		}
	}
	return authorizer.DecisionNoOpinion, refuse, nil
}

// usesVolume: the pod has a claim bound to the volume.
func (a *Authorizer) usesVolume(p *corev1.Pod, pv string) bool {
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		claim, err := a.claims.PersistentVolumeClaims(p.Namespace).Get(v.PersistentVolumeClaim.ClaimName)
		if err == nil && claim.Spec.VolumeName == pv {
			return true
		}
	}
	return false
}

func serviceAccount(p *corev1.Pod) string {
	if p.Spec.ServiceAccountName != "" {
		return p.Spec.ServiceAccountName
	}
	return "default"
}

// uses tells whether the pod's spec names the object of the resource:
// volumes (projected sources too), env, envFrom and imagePullSecrets, as
// the Node authorizer's graph has edges for.
func uses(p *corev1.Pod, resource, name string) bool {
	found := false
	visit := func(res, n string) {
		if res == resource && n == name {
			found = true
		}
	}
	for _, s := range p.Spec.ImagePullSecrets {
		visit("secrets", s.Name)
	}
	for _, v := range p.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			visit("persistentvolumeclaims", v.PersistentVolumeClaim.ClaimName)
		case v.ConfigMap != nil:
			visit("configmaps", v.ConfigMap.Name)
		case v.Secret != nil:
			visit("secrets", v.Secret.SecretName)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.ConfigMap != nil {
					visit("configmaps", src.ConfigMap.Name)
				}
				if src.Secret != nil {
					visit("secrets", src.Secret.Name)
				}
			}
		case v.CSI != nil && v.CSI.NodePublishSecretRef != nil:
			visit("secrets", v.CSI.NodePublishSecretRef.Name)
		}
	}
	containers := make([]corev1.Container, 0, len(p.Spec.InitContainers)+len(p.Spec.Containers))
	containers = append(append(containers, p.Spec.InitContainers...), p.Spec.Containers...)
	for _, c := range p.Spec.EphemeralContainers {
		containers = append(containers, corev1.Container{Env: c.Env, EnvFrom: c.EnvFrom})
	}
	for _, c := range containers {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				visit("configmaps", e.ConfigMapRef.Name)
			}
			if e.SecretRef != nil {
				visit("secrets", e.SecretRef.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if e.ValueFrom.ConfigMapKeyRef != nil {
				visit("configmaps", e.ValueFrom.ConfigMapKeyRef.Name)
			}
			if e.ValueFrom.SecretKeyRef != nil {
				visit("secrets", e.ValueFrom.SecretKeyRef.Name)
			}
		}
	}
	return found
}
