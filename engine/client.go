package engine

import (
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// RESTConfig is a client-go configuration that reaches this engine's API in
// process, with no socket, as the admin. Start must have returned.
func (e *Engine) RESTConfig() (*rest.Config, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.restConfigLocked()
}

func (e *Engine) restConfigLocked() (*rest.Config, error) {
	api := e.api
	if api == nil {
		return nil, ErrNotStarted
	}
	return &rest.Config{
		// The host only shapes URLs: the transport never dials it.
		Host:      "http://skiff.in-process",
		Transport: api.InProcessTransport(),
		UserAgent: "skiff-embedded",
		// In memory, client-side throttling only slows the embedder down.
		QPS: -1,
	}, nil
}

// Clientset returns a typed client-go clientset over the in-process
// transport.
func (e *Engine) Clientset() (kubernetes.Interface, error) {
	cfg, err := e.RESTConfig()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("clientset: %w", err)
	}
	return cs, nil
}

// DynamicClient returns a client-go dynamic client over the in-process
// transport, for resources without Go types (custom resources).
func (e *Engine) DynamicClient() (dynamic.Interface, error) {
	cfg, err := e.RESTConfig()
	if err != nil {
		return nil, err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	return dc, nil
}
