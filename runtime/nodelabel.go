package runtime

// NodeLabelPrefix + a runtime's Name labels every node that offers that
// runtime, with the value NodeLabelValue ("skiff.dev/runtime-wasm": "true").
// The node agent sets it for each runtime it has; the scheduler places a
// pod that names a RuntimeClass only on nodes with the label for it; the
// RuntimeClass "wasm" selects such nodes.
//
// It lives here, beside Runtime.Name, because it is part of the contract
// between a node's runtimes and the control plane, and users see it on
// their Nodes (`kubectl get nodes -L skiff.dev/runtime-wasm`), so a program
// embedding the engine, or placing pods itself, may need it too.
const (
	NodeLabelPrefix = "skiff.dev/runtime-"
	NodeLabelValue  = "true"
)

// NodeLabel is the label key of the nodes that offer the runtime whose
// Name (the RuntimeClass handler) is name.
func NodeLabel(name string) string { return NodeLabelPrefix + name }
