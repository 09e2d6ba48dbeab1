package runtime

// FirewallEnforcer is implemented by a Runtime that asks
// ContainerSpec.Firewall about its containers' connections (connect,
// accept, the first datagram to or from a peer). A Runtime that does not
// implement it is taken not to: the node then says that it does not hold
// its pods to their NetworkPolicies, rather than claim what it does not do.
type FirewallEnforcer interface {
	// FirewallEnforced reports whether the runtime consults
	// ContainerSpec.Firewall.
	FirewallEnforced() bool
}
