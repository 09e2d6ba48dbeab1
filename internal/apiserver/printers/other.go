package printers

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Printers of the networking, discovery, node, storage, coordination,
// policy and RBAC groups.
func init() {
	register("networking.k8s.io", "Ingress", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Class", "string", "The name of the IngressClass resource that should be used for additional configuration"),
		col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
		col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
		col("Ports", "string", "Ports of TLS configurations that open"),
		ageColumn,
	}, ingressCells))
	register("networking.k8s.io", "IngressClass", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Controller", "string", "Controller that is responsible for handling this class"),
		col("Parameters", "string", "A reference to a resource with additional parameters"),
		ageColumn,
	}, func(ic *networkingv1.IngressClass, now time.Time) []any {
		params := "<none>"
		if p := ic.Spec.Parameters; p != nil {
			params = p.Kind
			if p.APIGroup != nil {
				params += "." + *p.APIGroup
			}
			params += "/" + p.Name
		}
		return []any{ic.Name, ic.Spec.Controller, params, age(ic.CreationTimestamp, now)}
	}))
	register("networking.k8s.io", "NetworkPolicy", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Pod-Selector", "string", networkingv1.NetworkPolicySpec{}.SwaggerDoc()["podSelector"]),
		ageColumn,
	}, func(np *networkingv1.NetworkPolicy, now time.Time) []any {
		return []any{np.Name, metav1.FormatLabelSelector(&np.Spec.PodSelector), age(np.CreationTimestamp, now)}
	}))
	register("discovery.k8s.io", "EndpointSlice", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("AddressType", "string", discoveryv1.EndpointSlice{}.SwaggerDoc()["addressType"]),
		col("Ports", "string", discoveryv1.EndpointSlice{}.SwaggerDoc()["ports"]),
		col("Endpoints", "string", discoveryv1.EndpointSlice{}.SwaggerDoc()["endpoints"]),
		ageColumn,
	}, func(es *discoveryv1.EndpointSlice, now time.Time) []any {
		var ports, addrs []string
		for _, p := range es.Ports {
			switch {
			case p.Port != nil:
				ports = append(ports, strconv.Itoa(int(*p.Port)))
			case p.Name != nil:
				ports = append(ports, *p.Name)
			default:
				ports = append(ports, "*") // all ports
			}
		}
		for _, e := range es.Endpoints {
			addrs = append(addrs, e.Addresses...)
		}
		return []any{es.Name, string(es.AddressType), shortList(ports), shortList(addrs), age(es.CreationTimestamp, now)}
	}))
	register("node.k8s.io", "RuntimeClass", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Handler", "string", nodev1.RuntimeClass{}.SwaggerDoc()["handler"]),
		ageColumn,
	}, func(rc *nodev1.RuntimeClass, now time.Time) []any {
		return []any{rc.Name, rc.Handler, age(rc.CreationTimestamp, now)}
	}))
	register("scheduling.k8s.io", "PriorityClass", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Value", "integer", schedulingv1.PriorityClass{}.SwaggerDoc()["value"]),
		col("Global-Default", "boolean", schedulingv1.PriorityClass{}.SwaggerDoc()["globalDefault"]),
		ageColumn,
		col("PreemptionPolicy", "string", schedulingv1.PriorityClass{}.SwaggerDoc()["preemptionPolicy"]),
	}, func(pc *schedulingv1.PriorityClass, now time.Time) []any {
		policy := ""
		if pc.PreemptionPolicy != nil {
			policy = string(*pc.PreemptionPolicy)
		}
		return []any{pc.Name, int64(pc.Value), pc.GlobalDefault, age(pc.CreationTimestamp, now), policy}
	}))
	register("storage.k8s.io", "StorageClass", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Provisioner", "string", storagev1.StorageClass{}.SwaggerDoc()["provisioner"]),
		col("ReclaimPolicy", "string", storagev1.StorageClass{}.SwaggerDoc()["reclaimPolicy"]),
		col("VolumeBindingMode", "string", storagev1.StorageClass{}.SwaggerDoc()["volumeBindingMode"]),
		col("AllowVolumeExpansion", "string", storagev1.StorageClass{}.SwaggerDoc()["allowVolumeExpansion"]),
		ageColumn,
	}, storageClassCells))
	register("coordination.k8s.io", "Lease", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Holder", "string", coordinationv1.LeaseSpec{}.SwaggerDoc()["holderIdentity"]),
		ageColumn,
	}, func(l *coordinationv1.Lease, now time.Time) []any {
		holder := ""
		if l.Spec.HolderIdentity != nil {
			holder = *l.Spec.HolderIdentity
		}
		return []any{l.Name, holder, age(l.CreationTimestamp, now)}
	}))
	register("policy", "PodDisruptionBudget", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Min Available", "string", "The minimum number of pods that must be available."),
		col("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
		col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
		ageColumn,
	}, func(pdb *policyv1.PodDisruptionBudget, now time.Time) []any {
		minAvailable, maxUnavailable := "N/A", "N/A"
		if v := pdb.Spec.MinAvailable; v != nil {
			minAvailable = v.String()
		}
		if v := pdb.Spec.MaxUnavailable; v != nil {
			maxUnavailable = v.String()
		}
		return []any{pdb.Name, minAvailable, maxUnavailable, int64(pdb.Status.DisruptionsAllowed), age(pdb.CreationTimestamp, now)}
	}))

	// Role and ClusterRole have no printer in Kubernetes: the API server's
	// default convertor answers, with Name and Created At.
	register("rbac.authorization.k8s.io", "Role", typed([]metav1.TableColumnDefinition{nameColumn, createdAtColumn},
		func(r *rbacv1.Role, _ time.Time) []any { return []any{r.Name, createdAt(r.CreationTimestamp)} }))
	register("rbac.authorization.k8s.io", "ClusterRole", typed([]metav1.TableColumnDefinition{nameColumn, createdAtColumn},
		func(r *rbacv1.ClusterRole, _ time.Time) []any { return []any{r.Name, createdAt(r.CreationTimestamp)} }))
	register("rbac.authorization.k8s.io", "RoleBinding", typed(bindingColumns("roleBinding"),
		func(b *rbacv1.RoleBinding, now time.Time) []any {
			return bindingCells(b.Name, b.RoleRef, b.Subjects, b.CreationTimestamp, now)
		}))
	register("rbac.authorization.k8s.io", "ClusterRoleBinding", typed(bindingColumns("clusterRoleBinding"),
		func(b *rbacv1.ClusterRoleBinding, now time.Time) []any {
			return bindingCells(b.Name, b.RoleRef, b.Subjects, b.CreationTimestamp, now)
		}))
}

func ingressCells(ing *networkingv1.Ingress, now time.Time) []any {
	class := "<none>"
	if ing.Spec.IngressClassName != nil {
		class = *ing.Spec.IngressClassName
	}
	// HOSTS: the first three hosts named by rules, "*" if none is. A rule
	// left over after three makes "+ N more...", N counting rules past the
	// third, as in Kubernetes.
	var hosts []string
	more := false
	for _, r := range ing.Spec.Rules {
		if len(hosts) == listMax {
			more = true
			break
		}
		if r.Host != "" {
			hosts = append(hosts, r.Host)
		}
	}
	hostCell := "*"
	if len(hosts) > 0 {
		hostCell = strings.Join(hosts, ",")
		if more {
			hostCell += fmt.Sprintf(" + %d more...", len(ing.Spec.Rules)-listMax)
		}
	}
	var addrs []string
	for _, in := range ing.Status.LoadBalancer.Ingress {
		a := in.IP
		if a == "" {
			a = in.Hostname
		}
		if a != "" && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	ports := "80"
	if len(ing.Spec.TLS) > 0 {
		ports = "80, 443"
	}
	return []any{ing.Name, class, hostCell, strings.Join(addrs, ","), ports, age(ing.CreationTimestamp, now)}
}

// shortList shows at most three items then "+ N more...", or <unset> for
// none (EndpointSlice's PORTS and ENDPOINTS).
func shortList(items []string) string {
	if len(items) == 0 {
		return "<unset>"
	}
	if len(items) <= listMax {
		return strings.Join(items, ",")
	}
	return strings.Join(items[:listMax], ",") + fmt.Sprintf(" + %d more...", len(items)-listMax)
}

// Annotations that mark the default storage class (the beta one is still
// honoured).
const (
	defaultClassAnnotation     = "storageclass.kubernetes.io/is-default-class"
	betaDefaultClassAnnotation = "storageclass.beta.kubernetes.io/is-default-class"
)

func storageClassCells(sc *storagev1.StorageClass, now time.Time) []any {
	name := sc.Name
	if sc.Annotations[defaultClassAnnotation] == "true" || sc.Annotations[betaDefaultClassAnnotation] == "true" {
		name += " (default)"
	}
	reclaim := string(corev1.PersistentVolumeReclaimDelete)
	if sc.ReclaimPolicy != nil {
		reclaim = string(*sc.ReclaimPolicy)
	}
	binding := string(storagev1.VolumeBindingImmediate)
	if sc.VolumeBindingMode != nil {
		binding = string(*sc.VolumeBindingMode)
	}
	expand := sc.AllowVolumeExpansion != nil && *sc.AllowVolumeExpansion
	return []any{name, sc.Provisioner, reclaim, binding, expand, age(sc.CreationTimestamp, now)}
}

// bindingColumns are the columns of RoleBinding and ClusterRoleBinding;
// what names the kind in the descriptions.
func bindingColumns(what string) []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		nameColumn,
		col("Role", "string", rbacv1.RoleBinding{}.SwaggerDoc()["roleRef"]),
		ageColumn,
		wide("Users", "string", "Users in the "+what),
		wide("Groups", "string", "Groups in the "+what),
		wide("ServiceAccounts", "string", "ServiceAccounts in the "+what),
	}
}

func bindingCells(name string, ref rbacv1.RoleRef, subjects []rbacv1.Subject, created metav1.Time, now time.Time) []any {
	var users, groups, sas []string
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			users = append(users, s.Name)
		case rbacv1.GroupKind:
			groups = append(groups, s.Name)
		case rbacv1.ServiceAccountKind:
			sas = append(sas, s.Namespace+"/"+s.Name)
		}
	}
	return []any{
		name, ref.Kind + "/" + ref.Name, age(created, now),
		strings.Join(users, ", "), strings.Join(groups, ", "), strings.Join(sas, ", "),
	}
}
