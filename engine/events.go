package engine

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// EventRecorder returns a recorder that writes Kubernetes Events as
// component on this node, the way Kubernetes components record them
// (client-go's record package: aggregation of repeats, rate limiting,
// asynchronous writes). The engine's controllers and node agent record
// through it, and an embedding program's own controllers can too. The
// recorders stop with the engine.
func (e *Engine) EventRecorder(component string) (record.EventRecorder, error) {
	cs, err := e.Clientset()
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.events == nil {
		e.events = record.NewBroadcaster()
		e.events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	}
	if component == "" {
		return nil, fmt.Errorf("event recorder: a component name is required")
	}
	return e.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component, Host: e.cfg.NodeName}), nil
}
