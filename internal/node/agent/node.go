package agent

import (
	"os"
	"runtime"
	"strings"

	"github.com/skiffhq/skiff/internal/node/agent/nodestats"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// Version is what the agent reports as its kubelet version: the Kubernetes
// release whose node API it follows.
const Version = "v1.32.13-skiff"

// DefaultMaxPods is the pods a node accepts unless Config.MaxPods says
// otherwise: Kubernetes' default.
const DefaultMaxPods = 110

// describeNode builds the Node this agent registers: capacity from the
// machine (memory: the engine's memory cgroup limit when it is less),
// allocatable equal to capacity less the hard eviction threshold (as the
// kubelet reserves it: pods that fit in allocatable never push the node into
// eviction by themselves), the runtimes offered as labels, and Ready
// conditions.
func (a *Agent) describeNode() (*corev1.Node, error) {
	mi, err := nodestats.ReadMemory()
	if err != nil {
		return nil, err
	}
	mem := mi.Total
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(mem, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(int64(a.cfg.MaxPods), resource.DecimalSI),
	}
	allocatable := capacity.DeepCopy()
	if t := a.cfg.EvictionMemoryAvailable; t > 0 {
		allocatable[corev1.ResourceMemory] = *resource.NewQuantity(max(mem-t, 0), resource.BinarySI)
	}
	labels := map[string]string{
		corev1.LabelHostname:   a.cfg.NodeName,
		corev1.LabelOSStable:   runtime.GOOS,
		corev1.LabelArchStable: runtime.GOARCH,
	}
	for k, v := range a.cfg.Labels {
		labels[k] = v
	}
	var runtimeVersion string
	if rt := a.cfg.Runtime; rt != nil {
		labels[skiffrt.NodeLabel(rt.Name())] = skiffrt.NodeLabelValue
		runtimeVersion = rt.Version()
	}
	a.allocatable = allocatable
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	diskCond := cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "skiff agent has no disk pressure")
	if a.disk != nil {
		c := a.disk.condition()
		diskCond.Status, diskCond.Reason, diskCond.Message = c.Status, c.Reason, c.Message
	}
	host, _ := os.Hostname()
	node := &corev1.Node{
		TypeMeta:   metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Labels: labels, Annotations: a.nodeAnnotations()},
		Status: corev1.NodeStatus{
			Capacity: capacity, Allocatable: allocatable.DeepCopy(),
			Addresses: append([]corev1.NodeAddress{{Type: corev1.NodeHostName, Address: host}}, a.cfg.Addresses...),
			Conditions: []corev1.NodeCondition{
				cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "skiff agent is posting ready status"),
				cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "skiff agent has sufficient memory available"),
				diskCond,
				cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "skiff agent has sufficient PID available"),
			},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion: Version, KubeProxyVersion: Version,
				OperatingSystem: runtime.GOOS, Architecture: runtime.GOARCH,
				ContainerRuntimeVersion: runtimeVersion,
				KernelVersion:           kernelVersion(), OSImage: osImage(),
			},
		},
	}
	a.describeCPULimits(node, now)
	a.describeNetworkPolicy(node)
	return node, nil
}

func kernelVersion() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func osImage() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return runtime.GOOS
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}
