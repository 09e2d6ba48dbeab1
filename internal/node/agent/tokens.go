package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/agent/volumes"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

// podTokens is the node's token manager, as the kubelet's
// (pkg/kubelet/token): the tokens of pods' projected serviceAccountToken
// volumes, asked of the control plane over the bus (which mints them only
// for pods bound to this node) and kept until 80% of their life has gone,
// so the volume refresh (VolumeSyncPeriod) writes a new one in time.
type podTokens struct {
	a   *Agent
	now func() time.Time

	mu    sync.Mutex
	cache map[tokenKey]cachedToken
}

type tokenKey struct {
	uid, audience string
	seconds       int64
}

type cachedToken struct {
	token         string
	issued, until time.Time
}

var _ volumes.Tokens = (*podTokens)(nil)

// maxCachedTokens bounds the cache: a node runs far fewer pods; past it,
// expired entries are dropped first and then everything (tokens are only
// asked for again).
const maxCachedTokens = 4096

// stale tells a token that needs replacing: past 80% of its life, as the
// kubelet's requiresRefresh.
func (c cachedToken) stale(now time.Time) bool {
	life := c.until.Sub(c.issued)
	return !now.Before(c.issued.Add(life * 8 / 10))
}

// PodToken implements volumes.Tokens.
func (t *podTokens) PodToken(ctx context.Context, pod *corev1.Pod, audience string, seconds int64) (string, error) {
	if t == nil {
		return "", errors.New("this node has no token source")
	}
	key := tokenKey{uid: string(pod.UID), audience: audience, seconds: seconds}
	now := t.now()
	t.mu.Lock()
	c, ok := t.cache[key]
	t.mu.Unlock()
	if ok && !c.stale(now) {
		return c.token, nil
	}
	subject, err := bus.SubjectNodeObjects(t.a.cfg.NodeName)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := bus.Request[protocol.ObjectRequest, protocol.ObjectResponse](ctx, t.a.cfg.Bus, subject,
		protocol.ObjectRequest{Node: t.a.cfg.NodeName, Kind: "ServiceAccountToken", Namespace: pod.Namespace, Name: pod.Name,
			UID: string(pod.UID), Audience: audience, ExpirationSeconds: seconds})
	if err != nil {
		if ok && now.Before(c.until) {
			// The control plane is out of reach: the token in hand is
			// still good, keep it rather than fail the volume.
			return c.token, nil
		}
		return "", fmt.Errorf("request a token for pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if resp.NotFound || resp.Token == "" {
		return "", errors.New("the control plane has no token for the pod (deleted?)")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.cache) >= maxCachedTokens {
		for k, v := range t.cache {
			if !now.Before(v.until) {
				delete(t.cache, k)
			}
		}
		if len(t.cache) >= maxCachedTokens {
			clear(t.cache)
		}
	}
	t.cache[key] = cachedToken{token: resp.Token, issued: now, until: resp.TokenExpiration}
	return resp.Token, nil
}

// forget drops the tokens of a pod that stopped on this node.
func (t *podTokens) forget(uid string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.cache {
		if k.uid == uid {
			delete(t.cache, k)
		}
	}
}
