package scheduler

import corev1 "k8s.io/api/core/v1"

// hostPort is one host port a pod's container asks for, defaulted as
// Kubernetes defaults it: TCP, on every address (0.0.0.0).
type hostPort struct {
	ip    string
	proto corev1.Protocol
	port  int32
}

const anyIP = "0.0.0.0"

// hostPorts lists the host ports of pod's containers (Kubernetes 1.32
// reads spec.containers only).
func hostPorts(pod *corev1.Pod) []hostPort {
	var out []hostPort
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort <= 0 {
				continue
			}
			hp := hostPort{ip: p.HostIP, proto: p.Protocol, port: p.HostPort}
			if hp.ip == "" {
				hp.ip = anyIP
			}
			if hp.proto == "" {
				hp.proto = corev1.ProtocolTCP
			}
			out = append(out, hp)
		}
	}
	return out
}

// fitsPorts is Kubernetes' NodePorts filter: a wanted host port conflicts
// with one in use of the same protocol and number when either listens on
// every address or both on the same one.
func fitsPorts(p *podInfo, n *nodeInfo) []string {
	for _, want := range p.ports {
		if portInUse(n.ports, want) {
			return []string{"node(s) didn't have free ports for the requested pod ports"}
		}
	}
	return nil
}

func portInUse(used map[hostPort]int, want hostPort) bool {
	if len(used) == 0 {
		return false
	}
	if want.ip == anyIP {
		for u := range used {
			if u.proto == want.proto && u.port == want.port {
				return true
			}
		}
		return false
	}
	return used[want] > 0 || used[hostPort{ip: anyIP, proto: want.proto, port: want.port}] > 0
}
