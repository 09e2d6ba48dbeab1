package customresource

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// Client reads and writes a kind's objects as its Go type, over client-go's
// dynamic client (custom kinds have no generated clientset).
type Client[T any] struct {
	kind *Kind[T]
	dyn  dynamic.NamespaceableResourceInterface
}

// Client returns a client for k's objects through cfg.
func (k *Kind[T]) Client(cfg *rest.Config) (*Client[T], error) {
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("customresource: dynamic client: %w", err)
	}
	return &Client[T]{kind: k, dyn: dc.Resource(k.GVR)}, nil
}

func (c *Client[T]) in(namespace string) dynamic.ResourceInterface {
	if c.kind.Namespaced {
		return c.dyn.Namespace(namespace)
	}
	return c.dyn
}

// Get reads one object; namespace is ignored for cluster-scoped kinds.
func (c *Client[T]) Get(ctx context.Context, namespace, name string) (*T, error) {
	u, err := c.in(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return c.kind.FromUnstructured(u)
}

// List reads every object in namespace ("" for all namespaces).
func (c *Client[T]) List(ctx context.Context, namespace string, opts metav1.ListOptions) ([]*T, error) {
	list, err := c.in(namespace).List(ctx, opts)
	if err != nil {
		return nil, err
	}
	out := make([]*T, 0, len(list.Items))
	for i := range list.Items {
		obj, err := c.kind.FromUnstructured(&list.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
	return out, nil
}

// Create writes a new object, with apiVersion and kind filled in, and
// returns it as stored (defaults applied, unknown fields pruned).
func (c *Client[T]) Create(ctx context.Context, obj *T) (*T, error) {
	u, err := c.kind.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	out, err := c.in(u.GetNamespace()).Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	return c.kind.FromUnstructured(out)
}

// Update replaces an object (its resourceVersion must be current: a stale
// one gets 409 Conflict). With a status subresource, status is kept.
func (c *Client[T]) Update(ctx context.Context, obj *T) (*T, error) {
	u, err := c.kind.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	out, err := c.in(u.GetNamespace()).Update(ctx, u, metav1.UpdateOptions{})
	if err != nil {
		return nil, err
	}
	return c.kind.FromUnstructured(out)
}

// UpdateStatus writes only the status, through the status subresource.
func (c *Client[T]) UpdateStatus(ctx context.Context, obj *T) (*T, error) {
	u, err := c.kind.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	out, err := c.in(u.GetNamespace()).UpdateStatus(ctx, u, metav1.UpdateOptions{})
	if err != nil {
		return nil, err
	}
	return c.kind.FromUnstructured(out)
}

// Delete removes an object; its dependents go by garbage collection.
func (c *Client[T]) Delete(ctx context.Context, namespace, name string) error {
	return c.in(namespace).Delete(ctx, name, metav1.DeleteOptions{})
}

// Patch applies a JSON merge patch (custom kinds take no strategic merge).
func (c *Client[T]) Patch(ctx context.Context, namespace, name string, mergePatch []byte) (*T, error) {
	out, err := c.in(namespace).Patch(ctx, name, types.MergePatchType, mergePatch, metav1.PatchOptions{})
	if err != nil {
		return nil, err
	}
	return c.kind.FromUnstructured(out)
}

// ToUnstructured converts obj, setting its apiVersion and kind.
func (k *Kind[T]) ToUnstructured(obj *T) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("customresource: %s to unstructured: %w", k.GVK.Kind, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(k.GVK)
	return u, nil
}

// FromUnstructured converts an object read from the API into T.
func (k *Kind[T]) FromUnstructured(u *unstructured.Unstructured) (*T, error) {
	obj := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		return nil, fmt.Errorf("customresource: %s %s from unstructured: %w", k.GVK.Kind, u.GetName(), err)
	}
	return obj, nil
}
