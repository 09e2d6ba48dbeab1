package engine

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiffhq/skiff/internal/apiserver"
	"github.com/skiffhq/skiff/internal/metrics/metricsapi"
	"github.com/skiffhq/skiff/internal/metrics/usage"
	"github.com/skiffhq/skiff/internal/node/agent"
	"github.com/skiffhq/skiff/raft"
)

// metricsGroups starts this server's usage store, following every node's
// usage reports on a bus connection of its own, and returns the metrics API
// groups the API server serves from it (metrics.k8s.io,
// custom.metrics.k8s.io). Every server keeps its own store, so any server
// answers `kubectl top` from memory.
func (e *Engine) metricsGroups(ctx context.Context) ([]apiserver.APIGroup, error) {
	conn, err := e.bus.Connect(ctx, "metrics")
	if err != nil {
		return nil, fmt.Errorf("metrics bus connection: %w", err)
	}
	e.stoppers = append(e.stoppers, conn.Close)
	// Three report intervals: one lost report does not hide a pod.
	interval := e.cfg.MetricsInterval
	if interval <= 0 {
		interval = agent.DefaultUsageInterval
	}
	store := usage.New(3 * interval)
	sub, err := store.Follow(context.Background(), conn, e.log)
	if err != nil {
		return nil, err
	}
	e.stoppers = append(e.stoppers, sub.Stop)
	return metricsapi.Groups(store, storeObjects{e.store}), nil
}

// storeObjects reads pods and nodes straight from the store, as the pod
// stream handlers do (streams.go): the metrics handlers run inside the API
// server and need one stale list, none of the API's machinery. Pods and
// nodes are stored unencrypted in their v1 form.
type storeObjects struct{ store *raft.Store }

func (s storeObjects) Pods(ctx context.Context, namespace string) ([]corev1.Pod, error) {
	prefix := "/registry/core/pods/"
	if namespace != "" {
		prefix += namespace + "/"
	}
	return listStored[corev1.Pod](ctx, s.store, prefix)
}

func (s storeObjects) Nodes(ctx context.Context) ([]corev1.Node, error) {
	return listStored[corev1.Node](ctx, s.store, "/registry/core/nodes/")
}

func listStored[T any](ctx context.Context, store *raft.Store, prefix string) ([]T, error) {
	res, err := store.List(ctx, prefix, raft.ListOptions{ReadOptions: raft.ReadOptions{Stale: true}})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	out := make([]T, len(res.KVs))
	for i, kv := range res.KVs {
		if err := json.Unmarshal(kv.Value, &out[i]); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
	}
	return out, nil
}
