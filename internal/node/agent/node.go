package agent

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Version is what the agent reports as its kubelet version: the Kubernetes
// release whose node API it follows.
const Version = "v1.32.13-skiff"

// DefaultMaxPods is the pods a node accepts unless Config.MaxPods says
// otherwise: Kubernetes' default.
const DefaultMaxPods = 110

// describeNode builds the Node this agent registers: capacity from the
// machine, allocatable equal to capacity (nothing is reserved yet), the
// runtimes offered as labels, and Ready conditions.
func (a *Agent) describeNode() (*corev1.Node, error) {
	mem, err := memTotal()
	if err != nil {
		return nil, err
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(mem, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(int64(a.cfg.MaxPods), resource.DecimalSI),
	}
	labels := map[string]string{
		corev1.LabelHostname:   a.cfg.NodeName,
		corev1.LabelOSStable:   runtime.GOOS,
		corev1.LabelArchStable: runtime.GOARCH,
	}
	var runtimeVersion string
	if rt := a.cfg.Runtime; rt != nil {
		labels[RuntimeLabelPrefix+rt.Name()] = "true"
		runtimeVersion = rt.Version()
	}
	a.allocatable = capacity.DeepCopy()
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	host, _ := os.Hostname()
	node := &corev1.Node{
		TypeMeta:   metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Labels: labels},
		Status: corev1.NodeStatus{
			Capacity: capacity, Allocatable: capacity.DeepCopy(),
			Addresses: append([]corev1.NodeAddress{{Type: corev1.NodeHostName, Address: host}}, a.cfg.Addresses...),
			Conditions: []corev1.NodeCondition{
				cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "skiff agent is posting ready status"),
				cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "skiff agent has sufficient memory available"),
				cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "skiff agent has no disk pressure"),
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
	return node, nil
}

// RuntimeLabelPrefix labels a node with each workload runtime it offers
// ("skiff.dev/runtime-wasm": "true"), so pods can be placed where their
// runtime exists.
const RuntimeLabelPrefix = "skiff.dev/runtime-"

// memTotal reads the machine's memory from /proc/meminfo.
func memTotal() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("node memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("node memory: %w", err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("node memory: no MemTotal in /proc/meminfo")
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
