// Package netpol will hold node networking: pod addresses (a loopback range
// without privileges, a bridge with them), Service load balancing with eBPF
// cgroup programs and a userspace fallback, NetworkPolicy, and DNS.
//
// Not built yet: see the README's feature table.
package netpol
