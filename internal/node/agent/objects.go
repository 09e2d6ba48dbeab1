package agent

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/agent/volumes"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

// errObjectNotFound: the ConfigMap or Secret a pod names does not exist.
// It is the volumes package's, which skips optional sources on it.
var errObjectNotFound = volumes.ErrNotFound

// objects fetches the ConfigMaps and Secrets one pod start needs, each once:
// a container's env and volumes see one version of an object.
type objects struct {
	a          *Agent
	ns         string
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
}

var _ volumes.Objects = (*objects)(nil)

func (a *Agent) objectsFor(ns string) *objects {
	return &objects{a: a, ns: ns, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
}

// volumeSources is what the volumes of a pod in namespace ns are made of.
func (a *Agent) volumeSources(ns string) volumes.Sources {
	return volumes.Sources{Objects: a.objectsFor(ns), Allocatable: a.allocatable, Tokens: a.tokens}
}

func (o *objects) fetch(ctx context.Context, kind, name string) (protocol.ObjectResponse, error) {
	subject, _ := bus.SubjectNodeObjects(o.a.cfg.NodeName)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := bus.Request[protocol.ObjectRequest, protocol.ObjectResponse](ctx, o.a.cfg.Bus, subject,
		protocol.ObjectRequest{Node: o.a.cfg.NodeName, Kind: kind, Namespace: o.ns, Name: name})
	if err != nil {
		return resp, fmt.Errorf("get %s %s/%s: %w", kind, o.ns, name, err)
	}
	if resp.NotFound {
		return resp, fmt.Errorf("%s %q %w", kind, name, errObjectNotFound)
	}
	return resp, nil
}

// ConfigMap implements volumes.Objects.
func (o *objects) ConfigMap(ctx context.Context, name string) (*corev1.ConfigMap, error) {
	if cm, ok := o.configMaps[name]; ok {
		return cm, nil
	}
	resp, err := o.fetch(ctx, "ConfigMap", name)
	if err != nil {
		return nil, err
	}
	o.configMaps[name] = resp.ConfigMap
	return resp.ConfigMap, nil
}

// Secret implements volumes.Objects.
func (o *objects) Secret(ctx context.Context, name string) (*corev1.Secret, error) {
	if s, ok := o.secrets[name]; ok {
		return s, nil
	}
	resp, err := o.fetch(ctx, "Secret", name)
	if err != nil {
		return nil, err
	}
	o.secrets[name] = resp.Secret
	return resp.Secret, nil
}

// ClaimVolume implements volumes.Objects: the control plane resolves the
// claim to its bound volume.
func (o *objects) ClaimVolume(ctx context.Context, claim string) (*corev1.PersistentVolume, error) {
	resp, err := o.fetch(ctx, "PersistentVolumeClaim", claim)
	if err != nil {
		return nil, err
	}
	if resp.PersistentVolume == nil {
		return nil, fmt.Errorf("persistentvolumeclaim %q: no volume", claim)
	}
	return resp.PersistentVolume, nil
}
