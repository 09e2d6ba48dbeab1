package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// serviceSyncWait bounds how long a container start waits for the node's
// first list of Services before it fails with CreateContainerConfigError
// (and is retried): a pod must not start with half the variables a kubelet
// would give it, nor hang while the control plane is away.
const serviceSyncWait = 10 * time.Second

// errServicesNotSynced is the kubelet's own refusal, word for word.
var errServicesNotSynced = errors.New("services have not yet been read at least once, cannot construct envvars")

// ServiceSource is what the agent reads of the cluster's Services, for
// the Service environment variables: an informer's cache over the node's
// service feed (servicefeed.ServiceCache), which the node's Service proxy
// follows too. The node side has no API client, and no informer of its
// own either: client-go's informer machinery links its REST client, which
// the architecture rules keep out of the agent (internal/archtest).
type ServiceSource interface {
	// HasSynced reports whether the first full list has arrived.
	HasSynced() bool
	// List returns the Services of namespace ns. The caller does not
	// modify them.
	List(ns string) ([]*corev1.Service, error)
}

// serviceEnv is the pod's Service environment as the kubelet makes it
// (getServiceEnvVarMap): nil when the agent follows no Services.
func (a *Agent) serviceEnv(ctx context.Context, pod *corev1.Pod) (map[string]string, error) {
	src := a.cfg.Services
	if src == nil {
		return nil, nil
	}
	if !src.HasSynced() {
		wctx, cancel := context.WithTimeout(ctx, serviceSyncWait)
		err := wait.PollUntilContextCancel(wctx, 50*time.Millisecond, true,
			func(context.Context) (bool, error) { return src.HasSynced(), nil })
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, errServicesNotSynced
		}
	}
	// The cluster's `kubernetes` Service is in every pod's environment;
	// the rest of its namespace's only with service links on (the default).
	svcs, err := src.List(metav1.NamespaceDefault)
	if err != nil {
		return nil, fmt.Errorf("list Services: %w", err)
	}
	if links := pod.Spec.EnableServiceLinks; (links == nil || *links) && pod.Namespace != metav1.NamespaceDefault {
		nsSvcs, err := src.List(pod.Namespace)
		if err != nil {
			return nil, fmt.Errorf("list Services of namespace %s: %w", pod.Namespace, err)
		}
		svcs = append(svcs, nsSvcs...)
	}
	return serviceEnvVars(svcs, pod.Namespace, pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks), nil
}

// serviceEnvVars builds the variables of the Services a pod in ns sees:
// `kubernetes` of the default namespace always, the Services of ns with
// service links on (a Service of ns named `kubernetes` then wins), only
// those with a ClusterIP. Per Service, the kubelet's names:
// NAME_SERVICE_HOST, NAME_SERVICE_PORT (the first port),
// NAME_SERVICE_PORT_PORTNAME (named ports) and Docker's link variables
// NAME_PORT (the first port's URL) and NAME_PORT_<port>_<PROTO> with
// _PROTO, _PORT and _ADDR; NAME is the Service's name upper-cased with
// '-' as '_'.
func serviceEnvVars(svcs []*corev1.Service, ns string, links bool) map[string]string {
	byName := map[string]*corev1.Service{}
	for _, s := range svcs {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone || len(s.Spec.Ports) == 0 {
			continue
		}
		switch {
		case links && s.Namespace == ns:
			byName[s.Name] = s
		case s.Namespace == metav1.NamespaceDefault && s.Name == "kubernetes":
			if _, ok := byName[s.Name]; !ok {
				byName[s.Name] = s
			}
		}
	}
	env := map[string]string{}
	for _, s := range byName {
		prefix := envVarName(s.Name)
		ip := s.Spec.ClusterIP
		env[prefix+"_SERVICE_HOST"] = ip
		env[prefix+"_SERVICE_PORT"] = strconv.Itoa(int(s.Spec.Ports[0].Port))
		for i, p := range s.Spec.Ports {
			port := strconv.Itoa(int(p.Port))
			if p.Name != "" {
				env[prefix+"_SERVICE_PORT_"+envVarName(p.Name)] = port
			}
			proto := string(p.Protocol)
			if proto == "" {
				proto = string(corev1.ProtocolTCP)
			}
			url := strings.ToLower(proto) + "://" + net.JoinHostPort(ip, port)
			if i == 0 {
				env[prefix+"_PORT"] = url
			}
			pp := prefix + "_PORT_" + port + "_" + strings.ToUpper(proto)
			env[pp] = url
			env[pp+"_PROTO"] = strings.ToLower(proto)
			env[pp+"_PORT"] = port
			env[pp+"_ADDR"] = ip
		}
	}
	return env
}

// envVarName is a Service or port name as a variable name. Both are DNS
// labels (IANA service names for ports): only '-' needs replacing.
func envVarName(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
}

// sortedKeys gives m's keys in order, so an environment reads the same at
// every start.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
