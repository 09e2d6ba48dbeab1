// Package downward answers the downward API's references, a pod's fields
// (fieldRef) and a container's resources (resourceFieldRef), for
// environment variables and volume files alike, as the kubelet's
// pkg/fieldpath and resource helpers do.
package downward

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// PodField answers a fieldRef: the value of the pod's field at path, for
// the fields Kubernetes' downward API offers.
func PodField(pod *corev1.Pod, path string) (string, error) {
	if k, ok := strings.CutPrefix(path, "metadata.labels['"); ok {
		return pod.Labels[strings.TrimSuffix(k, "']")], nil
	}
	if k, ok := strings.CutPrefix(path, "metadata.annotations['"); ok {
		return pod.Annotations[strings.TrimSuffix(k, "']")], nil
	}
	ips := func(list []corev1.PodIP) string {
		var s []string
		for _, ip := range list {
			s = append(s, ip.IP)
		}
		return strings.Join(s, ",")
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	case "status.hostIPs":
		var s []string
		for _, ip := range pod.Status.HostIPs {
			s = append(s, ip.IP)
		}
		return strings.Join(s, ","), nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.podIPs":
		return ips(pod.Status.PodIPs), nil
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

// formatMap writes labels or annotations as the downward API does:
// key="value" lines, sorted.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k + "=" + strconv.Quote(m[k]))
	}
	return b.String()
}

// ResourceField answers a resourceFieldRef of container c; a limit that is
// not set is the node's allocatable, as in Kubernetes.
func ResourceField(c *corev1.Container, ref *corev1.ResourceFieldSelector, allocatable corev1.ResourceList) (string, error) {
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		return "", fmt.Errorf("resourceFieldRef for another container (%s) is not supported", ref.ContainerName)
	}
	var q resource.Quantity
	kind, res, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	list := c.Resources.Limits
	if kind == "requests" {
		list = c.Resources.Requests
	}
	if v, ok := list[corev1.ResourceName(res)]; ok {
		q = v
	} else if kind == "requests" {
		q = resource.MustParse("0") // an unset request is none; only an unset limit is the node's
	} else if v, ok := allocatable[corev1.ResourceName(res)]; ok {
		q = v
	} else {
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if res == "cpu" {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}
