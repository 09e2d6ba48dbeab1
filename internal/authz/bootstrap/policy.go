// Package bootstrap is the RBAC policy every cluster starts with, after
// Kubernetes' bootstrappolicy (plugin/pkg/auth/authorizer/rbac/
// bootstrappolicy): the user-facing roles (cluster-admin, and admin, edit,
// view aggregated from the aggregate-to-* roles), the discovery and
// self-review roles every user holds, the roles of the control plane's
// components (system:kube-scheduler, system:kube-controller-manager,
// system:node, system:node-proxier, one system:controller:<name> per
// controller) and their bindings.
//
// The controllers' roles are cut to what skiff's controllers do (which is
// what Kubernetes' controllers of the same names do); the names and
// subjects are Kubernetes', so a policy written against a Kubernetes
// cluster's roles works here.
package bootstrap

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels and annotations of bootstrap objects, as Kubernetes sets them.
const (
	// AutoUpdateAnnotation "false" on a bootstrap role or binding tells
	// the server to leave it alone at start, as in Kubernetes.
	AutoUpdateAnnotation = "rbac.authorization.kubernetes.io/autoupdate"
	bootstrapLabel       = "kubernetes.io/bootstrapping"
	// AggregateTo is the label prefix admin, edit and view aggregate on.
	AggregateTo = "rbac.authorization.k8s.io/aggregate-to-"
)

// Identities of the control plane's components.
const (
	SchedulerUser         = "system:kube-scheduler"
	ControllerManagerUser = "system:kube-controller-manager"
	KubeProxyUser         = "system:kube-proxy"
	// NodeServerUser is skiff's own: the control plane's end of the node
	// agents' bus. It watches pods and records the nodes' events; pod
	// status and the objects pods use it writes and reads as the node
	// concerned (system:node:<name>).
	NodeServerUser = "system:skiff:node-server"
	// ControllerNamespace holds the controllers' service accounts.
	ControllerNamespace = "kube-system"
)

// Controller names: each runs as the service account of that name in
// kube-system, bound to system:controller:<name>, as
// kube-controller-manager --use-service-account-credentials does.
const (
	ReplicaSetController    = "replicaset-controller"
	DeploymentController    = "deployment-controller"
	StatefulSetController   = "statefulset-controller"
	DaemonSetController     = "daemon-set-controller"
	JobController           = "job-controller"
	CronJobController       = "cronjob-controller"
	GarbageCollector        = "generic-garbage-collector"
	NamespaceController     = "namespace-controller"
	EndpointController      = "endpoint-controller"
	EndpointSliceController = "endpointslice-controller"
	PersistentVolumeBinder  = "persistent-volume-binder"
	DisruptionController    = "disruption-controller"
	HPAController           = "horizontal-pod-autoscaler"
	NodeController          = "node-controller"
	TaintEvictionController = "taint-eviction-controller"
	ClusterRoleAggregator   = "clusterrole-aggregation-controller"
	// ServiceAccountController keeps the default ServiceAccount and the
	// kube-root-ca.crt ConfigMap in every namespace: Kubernetes'
	// service-account-controller and root-ca-cert-publisher in one loop.
	ServiceAccountController = "service-account-controller"
	ResourceQuotaController  = "resourcequota-controller"
)

var (
	read  = []string{"get", "list", "watch"}
	write = []string{"create", "delete", "deletecollection", "patch", "update"}
	all   = []string{"*"}
)

// rule builds a resource rule: verbs, groups, resources.
func rule(verbs []string, groups []string, resources ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, APIGroups: groups, Resources: resources}
}

func named(r rbacv1.PolicyRule, names ...string) rbacv1.PolicyRule {
	r.ResourceNames = names
	return r
}

func urls(verbs []string, paths ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, NonResourceURLs: paths}
}

func v(verbs ...string) []string  { return verbs }
func g(groups ...string) []string { return groups }

var core = g("")

// eventsRule lets a component record events in both event APIs.
var eventsRule = []rbacv1.PolicyRule{
	rule(v("create", "update", "patch"), core, "events"),
	rule(v("create", "update", "patch"), g("events.k8s.io"), "events"),
}

func clusterRole(name string, rules ...rbacv1.PolicyRule) rbacv1.ClusterRole {
	return rbacv1.ClusterRole{ObjectMeta: meta(name, nil), Rules: rules}
}

func meta(name string, labels map[string]string) metav1.ObjectMeta {
	l := map[string]string{bootstrapLabel: "rbac-defaults"}
	for k, v := range labels {
		l[k] = v
	}
	return metav1.ObjectMeta{Name: name, Labels: l, Annotations: map[string]string{AutoUpdateAnnotation: "true"}}
}

// aggregated is admin, edit or view: rules filled by the aggregation
// controller from the roles labelled aggregate-to-<name>. Those below
// aggregate into the next (view into edit, edit into admin), as in
// Kubernetes.
func aggregated(name string, labels map[string]string) rbacv1.ClusterRole {
	return rbacv1.ClusterRole{ObjectMeta: meta(name, labels), AggregationRule: &rbacv1.AggregationRule{
		ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{AggregateTo + name: "true"}}}}}
}

// NodeRules are what any node may do (the system:node role); the Node
// authorizer narrows the object reads and writes to the node's own.
func NodeRules() []rbacv1.PolicyRule {
	return append([]rbacv1.PolicyRule{
		rule(v("create"), g("authentication.k8s.io"), "tokenreviews"),
		rule(v("create"), g("authorization.k8s.io"), "subjectaccessreviews", "localsubjectaccessreviews"),
		rule(read, core, "services", "nodes", "pods"),
		rule(v("create", "update", "patch"), core, "nodes"),
		rule(v("update", "patch"), core, "nodes/status", "pods/status"),
		rule(v("create", "delete"), core, "pods"),
		rule(v("create"), core, "pods/eviction"),
		rule(v("get"), core, "secrets", "configmaps", "persistentvolumeclaims", "persistentvolumes"),
		rule(v("update", "patch"), core, "persistentvolumeclaims/status"),
		rule(v("create"), core, "serviceaccounts/token"),
		rule(v("get", "create", "update", "patch", "delete"), g("coordination.k8s.io"), "leases"),
		rule(read, g("node.k8s.io"), "runtimeclasses"),
		rule(read, g("storage.k8s.io"), "csidrivers", "csinodes"),
		rule(v("get"), g("storage.k8s.io"), "volumeattachments"),
		rule(read, g("discovery.k8s.io"), "endpointslices"),
	}, eventsRule...)
}

func controllerRole(name string, rules ...rbacv1.PolicyRule) rbacv1.ClusterRole {
	return clusterRole("system:controller:"+name, append(rules, eventsRule...)...)
}

// ClusterRoles is the bootstrap ClusterRoles.
func ClusterRoles() []rbacv1.ClusterRole {
	apps, batch, policy := g("apps"), g("batch"), g("policy")
	roles := []rbacv1.ClusterRole{
		clusterRole("cluster-admin", rule(all, all, "*"), urls(all, "*")),
		clusterRole("system:discovery", urls(v("get"), "/api", "/api/*", "/apis", "/apis/*", "/healthz",
			"/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/")),
		clusterRole("system:basic-user",
			rule(v("create"), g("authorization.k8s.io"), "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
			rule(v("create"), g("authentication.k8s.io"), "selfsubjectreviews")),
		clusterRole("system:public-info-viewer", urls(v("get"), "/healthz", "/livez", "/readyz", "/version", "/version/")),
		aggregated("admin", nil),
		aggregated("edit", map[string]string{AggregateTo + "admin": "true"}),
		aggregated("view", map[string]string{AggregateTo + "edit": "true"}),
		{ObjectMeta: meta("system:aggregate-to-admin", map[string]string{AggregateTo + "admin": "true"}), Rules: []rbacv1.PolicyRule{
			rule(v("create"), g("authorization.k8s.io"), "localsubjectaccessreviews"),
			rule(append(append([]string{}, read...), write...), g("rbac.authorization.k8s.io"), "rolebindings", "roles"),
			rule(write, g("coordination.k8s.io"), "leases"),
			rule(read, g("coordination.k8s.io"), "leases"),
		}},
		{ObjectMeta: meta("system:aggregate-to-edit", map[string]string{AggregateTo + "edit": "true"}), Rules: []rbacv1.PolicyRule{
			rule(read, core, "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"),
			rule(v("impersonate"), core, "serviceaccounts"),
			rule(write, core, "pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"),
			rule(v("create"), core, "pods/eviction"),
			rule(write, core, "configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
				"replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"),
			rule(v("create"), core, "serviceaccounts/token"),
			rule(write, apps, "daemonsets", "deployments", "deployments/rollback", "deployments/scale",
				"replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"),
			rule(write, g("autoscaling"), "horizontalpodautoscalers"),
			rule(write, batch, "cronjobs", "jobs"),
			rule(write, policy, "poddisruptionbudgets"),
			rule(write, g("networking.k8s.io"), "ingresses", "networkpolicies"),
			rule(write, g("discovery.k8s.io"), "endpointslices"),
		}},
		{ObjectMeta: meta("system:aggregate-to-view", map[string]string{AggregateTo + "view": "true"}), Rules: []rbacv1.PolicyRule{
			rule(read, core, "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
				"services", "services/status", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps"),
			rule(read, core, "bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
				"replicationcontrollers/status", "resourcequotas", "resourcequotas/status"),
			rule(read, core, "namespaces"),
			rule(read, g("discovery.k8s.io"), "endpointslices"),
			rule(read, apps, "controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
				"deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets",
				"statefulsets/scale", "statefulsets/status"),
			rule(read, g("autoscaling"), "horizontalpodautoscalers", "horizontalpodautoscalers/status"),
			rule(read, batch, "cronjobs", "cronjobs/status", "jobs", "jobs/status"),
			rule(read, policy, "poddisruptionbudgets", "poddisruptionbudgets/status"),
			rule(read, g("networking.k8s.io"), "ingresses", "ingresses/status", "networkpolicies"),
			rule(read, g("metrics.k8s.io"), "pods", "nodes"),
		}},
		clusterRole("system:node", NodeRules()...),
		clusterRole("system:node-proxier", append([]rbacv1.PolicyRule{
			rule(v("list", "watch"), core, "services", "endpoints"),
			rule(read, core, "nodes"),
			rule(v("list", "watch"), g("discovery.k8s.io"), "endpointslices"),
			// skiff's node proxy enforces NetworkPolicy too, so its feed
			// reads what policies select on.
			rule(v("list", "watch"), core, "pods", "namespaces"),
			rule(v("list", "watch"), g("networking.k8s.io"), "networkpolicies"),
		}, eventsRule...)...),
		clusterRole("system:kube-scheduler", append([]rbacv1.PolicyRule{
			rule(v("create"), g("coordination.k8s.io"), "leases"),
			named(rule(v("get", "update"), g("coordination.k8s.io"), "leases"), "kube-scheduler"),
			rule(read, core, "nodes", "namespaces", "services", "replicationcontrollers",
				"persistentvolumeclaims", "persistentvolumes", "configmaps"),
			rule(v("delete", "get", "list", "watch"), core, "pods"),
			rule(v("create"), core, "bindings", "pods/binding"),
			rule(v("patch", "update"), core, "pods/status"),
			rule(read, apps, "replicasets", "statefulsets"),
			rule(read, policy, "poddisruptionbudgets"),
			rule(read, g("storage.k8s.io"), "storageclasses", "csinodes", "csidrivers", "csistoragecapacities"),
			rule(v("create"), g("authentication.k8s.io"), "tokenreviews"),
			rule(v("create"), g("authorization.k8s.io"), "subjectaccessreviews"),
		}, eventsRule...)...),
		clusterRole("system:volume-scheduler",
			rule(v("get", "list", "watch", "patch", "update"), core, "persistentvolumes", "persistentvolumeclaims"),
			rule(read, g("storage.k8s.io"), "storageclasses")),
		clusterRole("system:kube-controller-manager", append([]rbacv1.PolicyRule{
			rule(v("create"), g("coordination.k8s.io"), "leases"),
			named(rule(v("get", "update"), g("coordination.k8s.io"), "leases"), "kube-controller-manager"),
			rule(v("create"), core, "secrets", "serviceaccounts"),
			rule(v("delete"), core, "secrets"),
			rule(v("get"), core, "configmaps", "namespaces", "secrets", "serviceaccounts"),
			rule(v("update"), core, "secrets", "serviceaccounts"),
			rule(v("create"), g("authentication.k8s.io"), "tokenreviews"),
			rule(v("create"), g("authorization.k8s.io"), "subjectaccessreviews"),
			// The shared informers every controller reads from.
			rule(v("list", "watch"), all, "*"),
			rule(v("create"), core, "serviceaccounts/token"),
		}, eventsRule...)...),
		clusterRole(NodeServerUser, append([]rbacv1.PolicyRule{
			// Reads only: pod status and the objects pods use go as
			// the node that reports or asks (the Node authorizer
			// decides), so no Secrets, ConfigMaps or pod writes here.
			rule(read, core, "pods", "persistentvolumeclaims", "persistentvolumes", "nodes"),
		}, eventsRule...)...),
	}
	return append(roles, controllerRoles()...)
}

func controllerRoles() []rbacv1.ClusterRole {
	apps, batch, policy, coord := g("apps"), g("batch"), g("policy"), g("coordination.k8s.io")
	return []rbacv1.ClusterRole{
		controllerRole(ReplicaSetController,
			rule(v("get", "list", "watch", "update"), g("apps", "extensions"), "replicasets"),
			rule(v("update"), g("apps", "extensions"), "replicasets/status", "replicasets/finalizers"),
			rule(v("list", "watch", "patch", "create", "delete"), core, "pods")),
		controllerRole(DeploymentController,
			rule(v("get", "list", "watch", "update"), g("apps", "extensions"), "deployments"),
			rule(v("update"), g("apps", "extensions"), "deployments/status", "deployments/finalizers"),
			rule(v("get", "list", "watch", "create", "update", "patch", "delete"), g("apps", "extensions"), "replicasets"),
			rule(v("get", "list", "watch", "update"), core, "pods")),
		controllerRole(StatefulSetController,
			rule(v("list", "watch"), core, "pods"),
			rule(v("list", "watch"), apps, "statefulsets"),
			rule(v("update"), apps, "statefulsets/status", "statefulsets/finalizers"),
			rule(v("get", "create", "delete", "update", "patch"), core, "pods"),
			rule(v("get", "list", "watch", "create", "delete", "update", "patch"), apps, "controllerrevisions"),
			rule(v("get", "create", "update", "patch", "delete"), core, "persistentvolumeclaims")),
		controllerRole(DaemonSetController,
			rule(read, g("apps", "extensions"), "daemonsets"),
			rule(v("update"), g("apps", "extensions"), "daemonsets/status", "daemonsets/finalizers"),
			rule(v("list", "watch"), core, "nodes"),
			rule(v("list", "watch", "create", "delete", "patch"), core, "pods"),
			rule(v("create"), core, "pods/binding"),
			rule(v("get", "list", "watch", "create", "delete", "update", "patch"), apps, "controllerrevisions")),
		controllerRole(JobController,
			rule(v("get", "list", "watch", "update", "patch"), batch, "jobs"),
			rule(v("update", "patch"), batch, "jobs/status", "jobs/finalizers"),
			rule(v("list", "watch", "create", "delete", "patch"), core, "pods")),
		controllerRole(CronJobController,
			rule(v("get", "list", "watch", "update"), batch, "cronjobs"),
			rule(v("get", "list", "watch", "create", "update", "delete", "patch"), batch, "jobs"),
			rule(v("update"), batch, "cronjobs/status", "cronjobs/finalizers"),
			rule(v("list", "delete"), core, "pods")),
		controllerRole(GarbageCollector, rule(v("get", "list", "watch", "patch", "update", "delete"), all, "*")),
		controllerRole(NamespaceController,
			rule(v("get", "list", "watch", "delete"), core, "namespaces"),
			rule(v("update"), core, "namespaces/finalize", "namespaces/status"),
			rule(v("get", "list", "delete", "deletecollection"), all, "*")),
		controllerRole(EndpointController,
			rule(read, core, "services", "pods", "nodes"),
			rule(v("get", "list", "create", "update", "delete"), core, "endpoints"),
			rule(v("create"), core, "endpoints/restricted")),
		controllerRole(EndpointSliceController,
			rule(read, core, "services", "pods", "nodes"),
			rule(v("get", "list", "watch", "create", "update", "delete"), g("discovery.k8s.io"), "endpointslices")),
		controllerRole(PersistentVolumeBinder,
			rule(v("create", "delete", "get", "list", "update", "watch"), core, "persistentvolumes"),
			rule(v("update"), core, "persistentvolumes/status"),
			rule(v("get", "list", "update", "watch"), core, "persistentvolumeclaims"),
			rule(v("update"), core, "persistentvolumeclaims/status"),
			rule(v("list", "watch", "get", "create", "delete"), core, "pods"),
			rule(read, core, "nodes"),
			rule(read, g("storage.k8s.io"), "storageclasses")),
		controllerRole(DisruptionController,
			rule(read, apps, "deployments", "replicasets", "statefulsets"),
			rule(read, core, "replicationcontrollers", "pods"),
			rule(read, policy, "poddisruptionbudgets"),
			rule(v("update"), policy, "poddisruptionbudgets/status"),
			rule(v("patch", "update"), core, "pods/status"),
			rule(v("get"), all, "*/scale")),
		controllerRole(HPAController,
			rule(read, g("autoscaling"), "horizontalpodautoscalers"),
			rule(v("update"), g("autoscaling"), "horizontalpodautoscalers/status"),
			rule(v("get", "update"), all, "*/scale"),
			rule(v("list"), core, "pods"),
			rule(v("get", "list"), g("metrics.k8s.io"), "pods"),
			rule(v("get", "list"), g("custom.metrics.k8s.io"), "*"),
			rule(v("get", "list"), g("external.metrics.k8s.io"), "*")),
		controllerRole(NodeController,
			rule(v("get", "list", "watch", "create", "update", "delete", "patch"), core, "nodes"),
			rule(v("patch", "update"), core, "nodes/status", "pods/status"),
			rule(v("get", "list", "watch", "delete"), core, "pods"),
			rule(v("get", "create", "update", "patch", "delete"), coord, "leases")),
		controllerRole(TaintEvictionController,
			rule(v("get", "list", "watch", "delete"), core, "pods"),
			rule(v("patch", "update"), core, "pods/status"),
			rule(read, core, "nodes")),
		controllerRole(ClusterRoleAggregator, rule(v("escalate", "get", "list", "watch", "update", "patch"), g("rbac.authorization.k8s.io"), "clusterroles")),
		controllerRole(ServiceAccountController,
			rule(v("get", "list", "watch", "create"), core, "serviceaccounts"),
			rule(v("get", "list", "watch", "create", "update"), core, "configmaps"),
			rule(v("list", "watch"), core, "namespaces")),
		controllerRole(ResourceQuotaController,
			rule(v("list", "watch"), all, "*"),
			rule(v("get", "list", "watch"), core, "resourcequotas"),
			rule(v("update"), core, "resourcequotas/status")),
	}
}

func binding(name, role string, subjects ...rbacv1.Subject) rbacv1.ClusterRoleBinding {
	return rbacv1.ClusterRoleBinding{ObjectMeta: meta(name, nil),
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects: subjects}
}

func group(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
}

func userSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

func serviceAccount(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ControllerNamespace, Name: name}
}

// ClusterRoleBindings is the bootstrap ClusterRoleBindings.
func ClusterRoleBindings() []rbacv1.ClusterRoleBinding {
	b := []rbacv1.ClusterRoleBinding{
		binding("cluster-admin", "cluster-admin", group("system:masters")),
		binding("system:discovery", "system:discovery", group("system:authenticated")),
		binding("system:basic-user", "system:basic-user", group("system:authenticated")),
		binding("system:public-info-viewer", "system:public-info-viewer",
			group("system:authenticated"), group("system:unauthenticated")),
		// Kubernetes binds system:node to nobody (the Node authorizer
		// decides for nodes); so does this.
		binding("system:node", "system:node"),
		binding("system:node-proxier", "system:node-proxier", userSubject(KubeProxyUser)),
		binding("system:kube-scheduler", "system:kube-scheduler", userSubject(SchedulerUser)),
		binding("system:volume-scheduler", "system:volume-scheduler", userSubject(SchedulerUser)),
		binding("system:kube-controller-manager", "system:kube-controller-manager", userSubject(ControllerManagerUser)),
		binding(NodeServerUser, NodeServerUser, userSubject(NodeServerUser)),
	}
	for _, r := range controllerRoles() {
		name := r.Name[len("system:controller:"):]
		subjects := []rbacv1.Subject{serviceAccount(name)}
		if name == EndpointSliceController {
			// skiff's endpoints controller writes Endpoints and
			// EndpointSlices, which are two controllers in Kubernetes.
			subjects = append(subjects, serviceAccount(EndpointController))
		}
		b = append(b, binding(r.Name, r.Name, subjects...))
	}
	return b
}
