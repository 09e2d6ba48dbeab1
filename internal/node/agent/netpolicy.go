package agent

import (
	corev1 "k8s.io/api/core/v1"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// NetworkPolicy for Wasm pods. The Wasm runtime owns every socket its
// guests have, so the node enforces NetworkPolicy there, connection by
// connection, with no packet filter: the agent hands each container the
// firewall of its pod (Config.Firewall, built by the engine over the
// node's policy evaluator, internal/netpol/policy) and the runtime asks it
// at connect and accept. The agent itself links no policy code: the
// evaluator follows the bus feed with informers, which the agent's
// architecture rule keeps out of it.

// NetworkPolicyLabel labels a node with how it holds pods to their
// NetworkPolicies: NetworkPolicyEnforcedForWasm, or "not-enforced" when
// the agent runs without a firewall or its runtime does not consult one
// (runtime.FirewallEnforcer). `kubectl get nodes -L
// skiff.dev/network-policy` shows it, and pods that rely on policy can
// select such nodes.
const NetworkPolicyLabel = "skiff.dev/network-policy"

// NetworkPolicyEnforcedForWasm is NetworkPolicyLabel's value on a node
// whose Wasm pods are held to their NetworkPolicies.
const NetworkPolicyEnforcedForWasm = "enforced-for-wasm"

// describeNetworkPolicy adds the label to the Node the agent registers.
func (a *Agent) describeNetworkPolicy(node *corev1.Node) {
	if a.cfg.Runtime == nil {
		return
	}
	enforcer, ok := a.cfg.Runtime.(skiffrt.FirewallEnforcer)
	if a.cfg.Firewall != nil && ok && enforcer.FirewallEnforced() {
		node.Labels[NetworkPolicyLabel] = NetworkPolicyEnforcedForWasm
		return
	}
	node.Labels[NetworkPolicyLabel] = "not-enforced"
	if a.cfg.Firewall != nil {
		a.log.Warn("NetworkPolicy not enforced on this node: the runtime does not consult the pods' firewalls",
			"runtime", a.cfg.Runtime.Name())
	}
}

// firewall is the firewall of pod (the agent's copy, with its address),
// or nil, which the runtime takes as allowing everything.
func (a *Agent) firewall(pod *corev1.Pod) skiffrt.Firewall {
	if a.cfg.Firewall == nil {
		return nil
	}
	return a.cfg.Firewall(pod)
}
