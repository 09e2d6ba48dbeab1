package resources

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// NewScheme returns a scheme with every built-in kind of k8s.io/api (the
// same set client-go knows), private to the caller: nothing global is
// touched, so two engines in one process do not share registrations.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

var (
	statusSub = Subresource{Name: "status", Verbs: StatusVerbs}
	scaleSub  = Subresource{Name: "scale", Group: "autoscaling", Version: "v1", Kind: "Scale", Verbs: StatusVerbs}
	all       = []string{"all"}
)

// builtins is the table of built-in resources. Order matters: discovery
// lists groups in the order their first resource appears here.
func builtins() []Resource {
	core := func(res, singular, kind string, ns bool, short []string, cat []string, subs ...Subresource) Resource {
		return Resource{Version: "v1", Resource: res, Singular: singular, Kind: kind, Namespaced: ns,
			ShortNames: short, Categories: cat, Subresources: subs}
	}
	in := func(group, version string, r Resource) Resource {
		r.Group, r.Version = group, version
		return r
	}
	stored := func(version string, r Resource) Resource {
		r.StorageVersion = version
		return r
	}
	return []Resource{
		core("namespaces", "namespace", "Namespace", false, []string{"ns"}, nil,
			Subresource{Name: "finalize", Kind: "Namespace", Verbs: []string{"update"}}, statusSub),
		core("pods", "pod", "Pod", true, []string{"po"}, all, statusSub,
			Subresource{Name: "attach", Kind: "PodAttachOptions", Verbs: []string{"create", "get"}},
			Subresource{Name: "binding", Kind: "Binding", Verbs: []string{"create"}},
			Subresource{Name: "ephemeralcontainers", Kind: "Pod", Verbs: []string{"get", "patch", "update"}},
			Subresource{Name: "eviction", Group: "policy", Version: "v1", Kind: "Eviction", Verbs: []string{"create"}},
			Subresource{Name: "exec", Kind: "PodExecOptions", Verbs: []string{"create", "get"}},
			Subresource{Name: "log", Kind: "Pod", Verbs: []string{"get"}},
			Subresource{Name: "portforward", Kind: "PodPortForwardOptions", Verbs: []string{"create", "get"}}),
		core("services", "service", "Service", true, []string{"svc"}, all, statusSub),
		core("endpoints", "endpoints", "Endpoints", true, []string{"ep"}, nil),
		core("configmaps", "configmap", "ConfigMap", true, []string{"cm"}, nil),
		core("secrets", "secret", "Secret", true, nil, nil),
		core("serviceaccounts", "serviceaccount", "ServiceAccount", true, []string{"sa"}, nil,
			Subresource{Name: "token", Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest", Verbs: []string{"create"}}),
		core("nodes", "node", "Node", false, []string{"no"}, nil, statusSub),
		core("events", "event", "Event", true, []string{"ev"}, nil),
		core("persistentvolumes", "persistentvolume", "PersistentVolume", false, []string{"pv"}, nil, statusSub),
		core("persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true, []string{"pvc"}, nil, statusSub),
		core("resourcequotas", "resourcequota", "ResourceQuota", true, []string{"quota"}, nil, statusSub),
		core("limitranges", "limitrange", "LimitRange", true, []string{"limits"}, nil),

		in("apps", "v1", core("deployments", "deployment", "Deployment", true, []string{"deploy"}, all, statusSub, scaleSub)),
		in("apps", "v1", core("replicasets", "replicaset", "ReplicaSet", true, []string{"rs"}, all, statusSub, scaleSub)),
		in("apps", "v1", core("statefulsets", "statefulset", "StatefulSet", true, []string{"sts"}, all, statusSub, scaleSub)),
		in("apps", "v1", core("daemonsets", "daemonset", "DaemonSet", true, []string{"ds"}, all, statusSub)),
		in("apps", "v1", core("controllerrevisions", "controllerrevision", "ControllerRevision", true, nil, nil)),

		in("batch", "v1", core("jobs", "job", "Job", true, nil, all, statusSub)),
		in("batch", "v1", core("cronjobs", "cronjob", "CronJob", true, []string{"cj"}, all, statusSub)),

		in("autoscaling", "v2", core("horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true, []string{"hpa"}, all, statusSub)),
		stored("v2", in("autoscaling", "v1", core("horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true, []string{"hpa"}, all, statusSub))),

		in("networking.k8s.io", "v1", core("ingresses", "ingress", "Ingress", true, []string{"ing"}, nil, statusSub)),
		in("networking.k8s.io", "v1", core("ingressclasses", "ingressclass", "IngressClass", false, nil, nil)),
		in("networking.k8s.io", "v1", core("networkpolicies", "networkpolicy", "NetworkPolicy", true, []string{"netpol"}, nil)),

		in("discovery.k8s.io", "v1", core("endpointslices", "endpointslice", "EndpointSlice", true, nil, nil)),
		in("node.k8s.io", "v1", core("runtimeclasses", "runtimeclass", "RuntimeClass", false, nil, nil)),
		in("storage.k8s.io", "v1", core("storageclasses", "storageclass", "StorageClass", false, []string{"sc"}, nil)),
		in("coordination.k8s.io", "v1", core("leases", "lease", "Lease", true, nil, nil)),
		in("scheduling.k8s.io", "v1", core("priorityclasses", "priorityclass", "PriorityClass", false, []string{"pc"}, nil)),
		in("policy", "v1", core("poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", true, []string{"pdb"}, nil, statusSub)),

		in("rbac.authorization.k8s.io", "v1", core("roles", "role", "Role", true, nil, nil)),
		in("rbac.authorization.k8s.io", "v1", core("rolebindings", "rolebinding", "RoleBinding", true, nil, nil)),
		in("rbac.authorization.k8s.io", "v1", core("clusterroles", "clusterrole", "ClusterRole", false, nil, nil)),
		in("rbac.authorization.k8s.io", "v1", core("clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", false, nil, nil)),

		in("admissionregistration.k8s.io", "v1", core("validatingadmissionpolicies", "validatingadmissionpolicy", "ValidatingAdmissionPolicy", false,
			nil, []string{"api-extensions"}, statusSub)),
		in("admissionregistration.k8s.io", "v1", core("validatingadmissionpolicybindings", "validatingadmissionpolicybinding", "ValidatingAdmissionPolicyBinding", false,
			nil, []string{"api-extensions"})),

		in("apiextensions.k8s.io", "v1", core("customresourcedefinitions", "customresourcedefinition", "CustomResourceDefinition", false,
			[]string{"crd", "crds"}, []string{"api-extensions"}, statusSub)),
	}
}
