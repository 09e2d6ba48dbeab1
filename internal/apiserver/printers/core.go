package printers

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// Printers of the core ("") group.
func init() {
	register("", "Pod", podPrinter())
	register("", "Service", typed(serviceColumns(), serviceCells))
	register("", "Endpoints", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Endpoints", "string", corev1.Endpoints{}.SwaggerDoc()["subsets"]),
		ageColumn,
	}, func(e *corev1.Endpoints, now time.Time) []any {
		return []any{e.Name, formatEndpoints(e), age(e.CreationTimestamp, now)}
	}))
	register("", "Namespace", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Status", "string", "The status of the namespace"),
		ageColumn,
	}, func(ns *corev1.Namespace, now time.Time) []any {
		phase := string(ns.Status.Phase)
		if phase == "" {
			// The API server sets Active on create; an object that
			// skipped that is active all the same.
			phase = string(corev1.NamespaceActive)
			if ns.DeletionTimestamp != nil {
				phase = string(corev1.NamespaceTerminating)
			}
		}
		return []any{ns.Name, phase, age(ns.CreationTimestamp, now)}
	}))
	register("", "Node", typed(nodeColumns(), nodeCells))
	register("", "ConfigMap", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Data", "string", corev1.ConfigMap{}.SwaggerDoc()["data"]),
		ageColumn,
	}, func(cm *corev1.ConfigMap, now time.Time) []any {
		return []any{cm.Name, int64(len(cm.Data) + len(cm.BinaryData)), age(cm.CreationTimestamp, now)}
	}))
	register("", "Secret", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Type", "string", corev1.Secret{}.SwaggerDoc()["type"]),
		col("Data", "string", corev1.Secret{}.SwaggerDoc()["data"]),
		ageColumn,
	}, func(s *corev1.Secret, now time.Time) []any {
		typ := s.Type
		if typ == "" {
			typ = corev1.SecretTypeOpaque // the API default
		}
		// stringData is write-only and folded into data on write; count
		// it too in case this object has not been through that yet.
		keys := len(s.Data)
		for k := range s.StringData {
			if _, dup := s.Data[k]; !dup {
				keys++
			}
		}
		return []any{s.Name, string(typ), int64(keys), age(s.CreationTimestamp, now)}
	}))
	register("", "ServiceAccount", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Secrets", "string", corev1.ServiceAccount{}.SwaggerDoc()["secrets"]),
		ageColumn,
	}, func(sa *corev1.ServiceAccount, now time.Time) []any {
		return []any{sa.Name, int64(len(sa.Secrets)), age(sa.CreationTimestamp, now)}
	}))
	register("", "Event", typed(eventColumns(), eventCells))
	register("", "PersistentVolume", typed(pvColumns(), pvCells))
	register("", "PersistentVolumeClaim", typed(pvcColumns(), pvcCells))
	register("", "ResourceQuota", typed([]metav1.TableColumnDefinition{
		nameColumn,
		ageColumn,
		col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
		col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
	}, resourceQuotaCells))
	// LimitRange has no printer in Kubernetes: the API server's default
	// convertor answers, with Name and Created At.
	register("", "LimitRange", typed([]metav1.TableColumnDefinition{nameColumn, createdAtColumn},
		func(l *corev1.LimitRange, _ time.Time) []any {
			return []any{l.Name, createdAt(l.CreationTimestamp)}
		}))
}

// Pod

func podPrinter() *Printer {
	p := typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
		col("Status", "string", "The aggregate status of the containers in this pod."),
		col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
		ageColumn,
		wide("IP", "string", corev1.PodStatus{}.SwaggerDoc()["podIP"]),
		wide("Node", "string", corev1.PodSpec{}.SwaggerDoc()["nodeName"]),
		wide("Nominated Node", "string", corev1.PodStatus{}.SwaggerDoc()["nominatedNodeName"]),
		wide("Readiness Gates", "string", corev1.PodSpec{}.SwaggerDoc()["readinessGates"]),
	}, podCells)
	p.conditions = func(obj runtime.Object) []metav1.TableRowCondition {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod == nil {
			return nil
		}
		switch pod.Status.Phase {
		case corev1.PodSucceeded:
			return []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: string(corev1.PodSucceeded), Message: "The pod has completed successfully."}}
		case corev1.PodFailed:
			return []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: string(corev1.PodFailed), Message: "The pod failed."}}
		}
		return nil
	}
	return p
}

// podCells computes the pod row the way Kubernetes does: STATUS starts from
// the phase (or status.reason) and is overridden by the first init container
// that has not finished ("Init:1/3", "Init:CrashLoopBackOff"), else by the
// containers' waiting or terminated reasons, the first container winning;
// deletion turns it into Terminating. READY and RESTARTS count the regular
// containers plus restartable init containers (sidecars).
func podCells(pod *corev1.Pod, now time.Time) []any {
	st := &pod.Status
	reason := string(st.Phase)
	if st.Reason != "" {
		reason = st.Reason
	}
	for _, c := range st.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			reason = corev1.PodReasonSchedulingGated
		}
	}

	sidecars := map[string]bool{}
	total := len(pod.Spec.Containers)
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars[c.Name] = true
			total++
		}
	}

	var restarts, sidecarRestarts int64
	var lastRestart, lastSidecarRestart time.Time
	ready := 0
	initializing := false
	for i, cs := range st.InitContainerStatuses {
		restarts += int64(cs.RestartCount)
		finished := lastTerminationTime(cs)
		lastRestart = later(lastRestart, finished)
		if sidecars[cs.Name] {
			sidecarRestarts += int64(cs.RestartCount)
			lastSidecarRestart = later(lastSidecarRestart, finished)
		}
		switch {
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			continue // done
		case sidecars[cs.Name] && cs.Started != nil && *cs.Started:
			if cs.Ready {
				ready++
			}
			continue // a started sidecar does not hold up the next one
		case cs.State.Terminated != nil:
			t := cs.State.Terminated
			switch {
			case t.Reason != "":
				reason = "Init:" + t.Reason
			case t.Signal != 0:
				reason = fmt.Sprintf("Init:Signal:%d", t.Signal)
			default:
				reason = fmt.Sprintf("Init:ExitCode:%d", t.ExitCode)
			}
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + cs.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
		}
		initializing = true
		break
	}

	if !initializing || podConditionTrue(st.Conditions, corev1.PodInitialized) {
		// While initializing, RESTARTS counts init containers; after, only
		// sidecars among them plus the regular containers.
		restarts, lastRestart = sidecarRestarts, lastSidecarRestart
		hasRunning := false
		for i := len(st.ContainerStatuses) - 1; i >= 0; i-- {
			cs := st.ContainerStatuses[i]
			restarts += int64(cs.RestartCount)
			lastRestart = later(lastRestart, lastTerminationTime(cs))
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				reason = cs.State.Waiting.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
				reason = cs.State.Terminated.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Signal != 0:
				reason = fmt.Sprintf("Signal:%d", cs.State.Terminated.Signal)
			case cs.State.Terminated != nil:
				reason = fmt.Sprintf("ExitCode:%d", cs.State.Terminated.ExitCode)
			case cs.Ready && cs.State.Running != nil:
				hasRunning = true
				ready++
			}
		}
		// One container completed while another still runs: the pod runs.
		if reason == "Completed" && hasRunning {
			if podConditionTrue(st.Conditions, corev1.PodReady) {
				reason = "Running"
			} else {
				reason = "NotReady"
			}
		}
	}

	if pod.DeletionTimestamp != nil {
		switch {
		case st.Reason == "NodeLost":
			reason = "Unknown"
		case st.Phase != corev1.PodSucceeded && st.Phase != corev1.PodFailed:
			reason = "Terminating"
		}
	}

	restartCell := strconv.FormatInt(restarts, 10)
	if restarts != 0 && !lastRestart.IsZero() {
		restartCell = fmt.Sprintf("%d (%s ago)", restarts, age(metav1.NewTime(lastRestart), now))
	}

	ip := st.PodIP
	if len(st.PodIPs) > 0 {
		ip = st.PodIPs[0].IP
	}
	readinessGates := "<none>"
	if n := len(pod.Spec.ReadinessGates); n > 0 {
		passed := 0
		for _, g := range pod.Spec.ReadinessGates {
			if podConditionTrue(st.Conditions, g.ConditionType) {
				passed++
			}
		}
		readinessGates = fmt.Sprintf("%d/%d", passed, n)
	}
	return []any{
		pod.Name,
		fmt.Sprintf("%d/%d", ready, total),
		reason,
		restartCell,
		age(pod.CreationTimestamp, now),
		orNone(ip),
		orNone(pod.Spec.NodeName),
		orNone(st.NominatedNodeName),
		readinessGates,
	}
}

// lastTerminationTime is when the container's previous run ended, the
// moment of its last restart.
func lastTerminationTime(cs corev1.ContainerStatus) time.Time {
	if t := cs.LastTerminationState.Terminated; t != nil {
		return t.FinishedAt.Time
	}
	return time.Time{}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// podConditionTrue reports whether the first condition of type typ is True.
func podConditionTrue(conds []corev1.PodCondition, typ corev1.PodConditionType) bool {
	for _, c := range conds {
		if c.Type == typ {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// orNone is s, or <none> when empty.
func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// Service

func serviceColumns() []metav1.TableColumnDefinition {
	doc := corev1.ServiceSpec{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		nameColumn,
		col("Type", "string", doc["type"]),
		col("Cluster-IP", "string", doc["clusterIP"]),
		col("External-IP", "string", doc["externalIPs"]),
		col("Port(s)", "string", doc["ports"]),
		ageColumn,
		wide("Selector", "string", doc["selector"]),
	}
}

func serviceCells(svc *corev1.Service, now time.Time) []any {
	typ := svc.Spec.Type
	if typ == "" {
		typ = corev1.ServiceTypeClusterIP // the API default
	}
	clusterIP := svc.Spec.ClusterIP
	if len(svc.Spec.ClusterIPs) > 0 {
		clusterIP = svc.Spec.ClusterIPs[0]
	}
	ports := servicePorts(svc.Spec.Ports)
	return []any{
		svc.Name,
		string(typ),
		orNone(clusterIP),
		serviceExternalIP(svc, typ),
		orNone(ports),
		age(svc.CreationTimestamp, now),
		labels.FormatLabels(svc.Spec.Selector),
	}
}

// serviceExternalIP is the EXTERNAL-IP cell: the external IPs, for a load
// balancer also its ingress points (<pending> until it has one), for an
// ExternalName service the name.
func serviceExternalIP(svc *corev1.Service, typ corev1.ServiceType) string {
	switch typ {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		if len(svc.Spec.ExternalIPs) > 0 {
			return strings.Join(svc.Spec.ExternalIPs, ",")
		}
		return "<none>"
	case corev1.ServiceTypeLoadBalancer:
		ips := loadBalancerIngress(svc.Status.LoadBalancer.Ingress)
		ips = append(ips, svc.Spec.ExternalIPs...)
		if len(ips) == 0 {
			return "<pending>"
		}
		return strings.Join(ips, ",")
	case corev1.ServiceTypeExternalName:
		return svc.Spec.ExternalName
	}
	return "<unknown>"
}

// loadBalancerIngress lists the ingress points, each by IP or else
// hostname, without repeats. (Kubernetes collects them in a set and prints
// them in map order; first-seen order is stabler and otherwise the same.)
func loadBalancerIngress(ingress []corev1.LoadBalancerIngress) []string {
	var out []string
	for _, in := range ingress {
		addr := in.IP
		if addr == "" {
			addr = in.Hostname
		}
		if addr != "" && !slices.Contains(out, addr) {
			out = append(out, addr)
		}
	}
	return out
}

// servicePorts is "port[:nodePort]/protocol", comma separated.
func servicePorts(ports []corev1.ServicePort) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP // the API default
		}
		if p.NodePort > 0 {
			parts[i] = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, proto)
		} else {
			parts[i] = fmt.Sprintf("%d/%s", p.Port, proto)
		}
	}
	return strings.Join(parts, ",")
}

// Endpoints

// listMax is how many items the list cells show before "+ N more...".
const listMax = 3

// formatEndpoints lists ip:port for every address and port, at most three,
// as Kubernetes does.
func formatEndpoints(e *corev1.Endpoints) string {
	if len(e.Subsets) == 0 {
		return "<none>"
	}
	var list []string
	count := 0
	add := func(s string) {
		if len(list) < listMax {
			list = append(list, s)
		}
		count++
	}
	for _, ss := range e.Subsets {
		if len(ss.Ports) == 0 {
			// A headless service without ports: bare addresses.
			for _, a := range ss.Addresses {
				add(a.IP)
			}
			continue
		}
		for _, p := range ss.Ports {
			for _, a := range ss.Addresses {
				add(net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
			}
		}
	}
	s := strings.Join(list, ",")
	if count > listMax {
		s += fmt.Sprintf(" + %d more...", count-listMax)
	}
	return s
}

// Node

func nodeColumns() []metav1.TableColumnDefinition {
	info := corev1.NodeSystemInfo{}.SwaggerDoc()
	addresses := corev1.NodeStatus{}.SwaggerDoc()["addresses"]
	return []metav1.TableColumnDefinition{
		nameColumn,
		col("Status", "string", "The status of the node"),
		col("Roles", "string", "The roles of the node"),
		ageColumn,
		col("Version", "string", info["kubeletVersion"]),
		wide("Internal-IP", "string", addresses),
		wide("External-IP", "string", addresses),
		wide("OS-Image", "string", info["osImage"]),
		wide("Kernel-Version", "string", info["kernelVersion"]),
		wide("Container-Runtime", "string", info["containerRuntimeVersion"]),
	}
}

func nodeCells(n *corev1.Node, now time.Time) []any {
	status := "Unknown"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				status = "Ready"
			} else {
				status = "NotReady"
			}
			// Kubernetes keeps the last Ready condition if there are
			// several; there should be one.
		}
	}
	if n.Spec.Unschedulable {
		status += ",SchedulingDisabled"
	}
	info := n.Status.NodeInfo
	unknown := func(s string) string {
		if s == "" {
			return "<unknown>"
		}
		return s
	}
	return []any{
		n.Name,
		status,
		orNone(strings.Join(nodeRoles(n.Labels), ",")),
		age(n.CreationTimestamp, now),
		info.KubeletVersion,
		nodeAddress(n, corev1.NodeInternalIP),
		nodeAddress(n, corev1.NodeExternalIP),
		unknown(info.OSImage),
		unknown(info.KernelVersion),
		unknown(info.ContainerRuntimeVersion),
	}
}

// nodeRoles are the roles named by node-role.kubernetes.io/<role> labels
// and by a kubernetes.io/role=<role> label, sorted and without repeats.
func nodeRoles(l map[string]string) []string {
	const prefix, roleLabel = "node-role.kubernetes.io/", "kubernetes.io/role"
	var roles []string
	for k, v := range l {
		switch {
		case strings.HasPrefix(k, prefix) && len(k) > len(prefix):
			roles = append(roles, k[len(prefix):])
		case k == roleLabel && v != "":
			roles = append(roles, v)
		}
	}
	sort.Strings(roles)
	return slices.Compact(roles)
}

// nodeAddress is the node's first address of a type, or <none>.
func nodeAddress(n *corev1.Node, typ corev1.NodeAddressType) string {
	for _, a := range n.Status.Addresses {
		if a.Type == typ {
			return a.Address
		}
	}
	return "<none>"
}

// Event

func eventColumns() []metav1.TableColumnDefinition {
	doc := corev1.Event{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		col("Last Seen", "string", doc["lastTimestamp"]),
		col("Type", "string", doc["type"]),
		col("Reason", "string", doc["reason"]),
		col("Object", "string", doc["involvedObject"]),
		wide("Subobject", "string", corev1.ObjectReference{}.SwaggerDoc()["fieldPath"]),
		wide("Source", "string", doc["source"]),
		col("Message", "string", doc["message"]),
		wide("First Seen", "string", doc["firstTimestamp"]),
		wide("Count", "string", doc["count"]),
		{Name: "Name", Type: "string", Format: "name", Priority: 1, Description: objectMetaDoc["name"]},
	}
}

// eventCells serves both event styles: the old one (first/last timestamp,
// count) and the events.k8s.io one written through core/v1 (eventTime,
// series).
func eventCells(e *corev1.Event, now time.Time) []any {
	first := age(e.FirstTimestamp, now)
	if e.FirstTimestamp.IsZero() {
		first = microAge(e.EventTime, now)
	}
	last := age(e.LastTimestamp, now)
	if e.LastTimestamp.IsZero() {
		last = first
	}
	count := e.Count
	if e.Series != nil {
		last = microAge(e.Series.LastObservedTime, now)
		count = e.Series.Count
	} else if count == 0 {
		count = 1 // a singleton event of the new API has no count
	}
	object := strings.ToLower(e.InvolvedObject.Kind)
	if e.InvolvedObject.Name != "" {
		object += "/" + e.InvolvedObject.Name
	}
	component, instance := e.Source.Component, e.Source.Host
	if component == "" {
		component = e.ReportingController
	}
	if instance == "" {
		instance = e.ReportingInstance
	}
	source := component
	if instance != "" {
		source += ", " + instance
	}
	return []any{
		last,
		e.Type,
		e.Reason,
		object,
		e.InvolvedObject.FieldPath,
		source,
		strings.TrimSpace(e.Message),
		first,
		int64(count),
		e.Name,
	}
}

// PersistentVolume and PersistentVolumeClaim

// betaStorageClassAnnotation is the storage class annotation that predates
// spec.storageClassName and still wins over it.
const betaStorageClassAnnotation = "volume.beta.kubernetes.io/storage-class"

func pvColumns() []metav1.TableColumnDefinition {
	spec, status := corev1.PersistentVolumeSpec{}.SwaggerDoc(), corev1.PersistentVolumeStatus{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		nameColumn,
		col("Capacity", "string", spec["capacity"]),
		col("Access Modes", "string", spec["accessModes"]),
		col("Reclaim Policy", "string", spec["persistentVolumeReclaimPolicy"]),
		col("Status", "string", status["phase"]),
		col("Claim", "string", spec["claimRef"]),
		col("StorageClass", "string", "StorageClass of the pv"),
		col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
		col("Reason", "string", status["reason"]),
		ageColumn,
		wide("VolumeMode", "string", spec["volumeMode"]),
	}
}

func pvCells(pv *corev1.PersistentVolume, now time.Time) []any {
	claim := ""
	if r := pv.Spec.ClaimRef; r != nil {
		claim = r.Namespace + "/" + r.Name
	}
	capacity := pv.Spec.Capacity[corev1.ResourceStorage]
	phase := string(pv.Status.Phase)
	if pv.DeletionTimestamp != nil {
		phase = "Terminating"
	}
	class, ok := pv.Annotations[betaStorageClassAnnotation]
	if !ok {
		class = pv.Spec.StorageClassName
	}
	return []any{
		pv.Name,
		capacity.String(),
		accessModes(pv.Spec.AccessModes),
		string(pv.Spec.PersistentVolumeReclaimPolicy),
		phase,
		claim,
		class,
		unset(pv.Spec.VolumeAttributesClassName),
		pv.Status.Reason,
		age(pv.CreationTimestamp, now),
		volumeMode(pv.Spec.VolumeMode),
	}
}

func pvcColumns() []metav1.TableColumnDefinition {
	spec, status := corev1.PersistentVolumeClaimSpec{}.SwaggerDoc(), corev1.PersistentVolumeClaimStatus{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		nameColumn,
		col("Status", "string", status["phase"]),
		col("Volume", "string", spec["volumeName"]),
		col("Capacity", "string", status["capacity"]),
		col("Access Modes", "string", status["accessModes"]),
		col("StorageClass", "string", "StorageClass of the pvc"),
		col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
		ageColumn,
		wide("VolumeMode", "string", spec["volumeMode"]),
	}
}

func pvcCells(pvc *corev1.PersistentVolumeClaim, now time.Time) []any {
	phase := string(pvc.Status.Phase)
	if pvc.DeletionTimestamp != nil {
		phase = "Terminating"
	}
	// Capacity and access modes are the bound volume's: blank until bound.
	capacity, modes := "", ""
	if pvc.Spec.VolumeName != "" {
		modes = accessModes(pvc.Status.AccessModes)
		q := pvc.Status.Capacity[corev1.ResourceStorage]
		capacity = q.String()
	}
	class, ok := pvc.Annotations[betaStorageClassAnnotation]
	if !ok && pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	return []any{
		pvc.Name,
		phase,
		pvc.Spec.VolumeName,
		capacity,
		modes,
		class,
		unset(pvc.Spec.VolumeAttributesClassName),
		age(pvc.CreationTimestamp, now),
		volumeMode(pvc.Spec.VolumeMode),
	}
}

// accessModes abbreviates access modes in Kubernetes' fixed order, each
// once: RWO,ROX,RWX,RWOP.
func accessModes(modes []corev1.PersistentVolumeAccessMode) string {
	var out []string
	for _, m := range []struct {
		mode  corev1.PersistentVolumeAccessMode
		short string
	}{
		{corev1.ReadWriteOnce, "RWO"},
		{corev1.ReadOnlyMany, "ROX"},
		{corev1.ReadWriteMany, "RWX"},
		{corev1.ReadWriteOncePod, "RWOP"},
	} {
		if slices.Contains(modes, m.mode) {
			out = append(out, m.short)
		}
	}
	return strings.Join(out, ",")
}

func volumeMode(m *corev1.PersistentVolumeMode) string {
	if m == nil {
		return "<unset>"
	}
	return string(*m)
}

// unset is *s, or <unset> for nil.
func unset(s *string) string {
	if s == nil {
		return "<unset>"
	}
	return *s
}

// ResourceQuota

// resourceQuotaCells lists "resource: used/hard" for each hard limit,
// sorted by resource name; limits.* go to the Limit column, the rest to
// Request.
func resourceQuotaCells(q *corev1.ResourceQuota, now time.Time) []any {
	names := make([]string, 0, len(q.Status.Hard))
	for r := range q.Status.Hard {
		names = append(names, string(r))
	}
	sort.Strings(names)
	var requests, limits []string
	for _, name := range names {
		used := q.Status.Used[corev1.ResourceName(name)]
		hard := q.Status.Hard[corev1.ResourceName(name)]
		item := fmt.Sprintf("%s: %s/%s", name, used.String(), hard.String())
		if strings.HasPrefix(name, "limits.") {
			limits = append(limits, item)
		} else {
			requests = append(requests, item)
		}
	}
	return []any{q.Name, age(q.CreationTimestamp, now), strings.Join(requests, ", "), strings.Join(limits, ", ")}
}
