package engine

import (
	"fmt"

	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/user"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffhq/skiff/internal/authz/bootstrap"
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

// restConfigAsLocked is an in-process client configuration that acts as
// u: the engine's own components (each controller, the scheduler, the node
// server) run under their own identities this way, so RBAC limits each to
// its role, as Kubernetes' components are limited. The embedder's
// RESTConfig stays the admin's.
func (e *Engine) restConfigAsLocked(u user.Info) (*rest.Config, error) {
	api := e.api
	if api == nil {
		return nil, ErrNotStarted
	}
	return &rest.Config{Host: "http://skiff.in-process", Transport: api.InProcessTransportAs(u),
		UserAgent: "skiff/" + u.GetName(), QPS: -1}, nil
}

// componentUser is a control-plane component's user (not a service
// account): system:kube-scheduler, system:kube-controller-manager.
func componentUser(name string) user.Info {
	return &user.DefaultInfo{Name: name, Groups: []string{user.AllAuthenticated}}
}

// nodeUser is a node's identity, as its client certificate names it:
// system:node:<name> in system:nodes.
func nodeUser(node string) user.Info {
	return &user.DefaultInfo{Name: "system:node:" + node, Groups: []string{"system:nodes", user.AllAuthenticated}}
}

// controllerUser is the service account a controller runs as,
// kube-system/<name>, as kube-controller-manager's
// --use-service-account-credentials gives each controller.
func controllerUser(name string) user.Info {
	groups := append(serviceaccount.MakeGroupNames(bootstrap.ControllerNamespace), user.AllAuthenticated)
	return &user.DefaultInfo{Name: serviceaccount.MakeUsername(bootstrap.ControllerNamespace, name), Groups: groups}
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
