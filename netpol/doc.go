// Package netpol holds node networking: pod addresses (a loopback range
// without privileges, a bridge with them), Service load balancing with eBPF
// cgroup programs and a userspace fallback, NetworkPolicy, and DNS.
//
// Built so far: the userspace Service proxy (internal/netpol/proxy), which unprivileged
// mode uses for ClusterIP and NodePort Services over TCP. The rest is not
// built yet: see the README's feature table.
package netpol
