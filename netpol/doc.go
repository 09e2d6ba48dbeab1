// Package netpol holds node networking: pod addresses (a loopback range
// without privileges, a bridge with them), Service load balancing with eBPF
// cgroup programs and a userspace fallback, NetworkPolicy, and DNS.
//
// Built so far: the userspace Service proxy (internal/netpol/proxy), which unprivileged
// mode uses for ClusterIP and NodePort Services over TCP; and NetworkPolicy
// for Wasm pods (internal/netpol/policy), decided connection by connection
// where the engine owns the sockets: the Wasm runtime asks each pod's
// firewall at connect and accept, and the Service proxy sends a client only
// to endpoints its egress policy allows, dialling them from the client's
// address so their ingress policy sees the client. A node's
// skiff.dev/network-policy label says whether its runtime enforces it. The
// rest is not built yet: see the README's feature table.
package netpol
