package archtest

// controlPlane is what node-side code links none of: the store, the API
// server, the loops that act through it (controllers, scheduler) and the
// pieces that serve nodes from it (dispatch, lifecycle, server, the
// metrics store and APIs), engine, which wires them all, and the
// libraries only they need.
var controlPlane = []string{
	"./raft/...",
	"./internal/apiserver/...",
	"./internal/authz/...",
	"./internal/controllers/...",
	"./internal/scheduler/...",
	"./internal/node/dispatch/...",
	"./internal/node/lifecycle/...",
	"./internal/node/server/...",
	"./internal/node/kvserver/...",
	"./internal/metrics/...",
	"./engine/...",
	"github.com/hashicorp/raft/...",
	"github.com/hashicorp/raft-wal/...",
	"k8s.io/apiserver/...",
}

// nodeSide is the agent (and whatever sub-packages it grows), the messages
// and join handshake it shares with the control plane, and the runtimes it
// drives.
var nodeSide = []string{
	"./internal/node/agent/...",
	"./internal/node/protocol/...",
	"./internal/node/join/...",
	"./runtime/...",
}

// nodeNetwork is the node's networking that runs client-go informers over
// the bus feed (internal/node/servicefeed): the Service proxy, the cluster
// DNS server and the network policy evaluator. client-go's informer machinery links
// client-go/rest, so rule 2 is too strict for them and 2b holds them to the
// clients themselves.
var nodeNetwork = []string{
	"./internal/netpol/proxy/...",
	"./internal/netpol/policy/...",
	"./internal/clusterdns/...",
}

// rules are skiff's architecture rules; docs/architecture.md states them in
// words, in this order. Adding a rule is adding a row.
var rules = []rule{
	{
		name:   "1. the node side never links the control plane",
		parts:  append(append([]string(nil), nodeSide...), nodeNetwork...),
		forbid: controlPlane,
	},
	{
		// Every API client goes through client-go/rest; the clientset,
		// informers and the dynamic client are named too for a clearer
		// report. (client-go/kubernetes/scheme, the type registry, is no
		// client.) The service proxy runs informers over the bus feed
		// (internal/node/servicefeed); client-go's informer machinery
		// (tools/cache) links client-go/rest, so the proxy is held to the
		// clients themselves instead: see the next rule.
		name:  "2. the node side reaches the control plane only over the bus",
		parts: nodeSide,
		forbid: []string{
			"k8s.io/client-go/rest/...",
			"k8s.io/client-go/kubernetes",
			"k8s.io/client-go/kubernetes/typed/...",
			"k8s.io/client-go/informers/...",
			"k8s.io/client-go/dynamic/...",
		},
	},
	{
		// They learn Services, EndpointSlices, NetworkPolicies, Namespaces
		// and Pods from the bus feed, so a worker, which has no API access,
		// serves Services and names and enforces policy too.
		name:  "2b. the node's Service proxy, cluster DNS and network policy use no API client",
		parts: nodeNetwork,
		forbid: []string{
			"k8s.io/client-go/kubernetes",
			"k8s.io/client-go/kubernetes/typed/...",
			"k8s.io/client-go/informers/...",
			"k8s.io/client-go/dynamic/...",
		},
	},
	{
		// Their own internal packages (runtime/wasm/internal/...) are
		// theirs; Go already keeps one runtime out of another's.
		name:   "3. runtimes import neither the engine nor skiff's internal packages",
		parts:  []string{"./runtime/..."},
		forbid: []string{"./engine/...", "./internal/...", "./raft/..."},
	},
	{
		name:     "4. the SDK builds for wasip1 from the standard library alone",
		platform: "wasip1/wasm",
		parts:    []string{"./sdk/..."},
		forbid:   []string{"..."},
		allow:    []string{"std", "./sdk/..."},
	},
	{
		// controllertest starts a whole engine for the controllers' tests.
		name:   "5. control-plane pieces outside the API server reach its state only through client-go",
		parts:  []string{"./internal/controllers/...", "./internal/scheduler/...", "./internal/node/dispatch/...", "./internal/node/lifecycle/...", "./internal/node/server/...", "./internal/node/kvserver/...", "./internal/imageregistry/..."},
		exempt: []string{"./internal/controllers/controllertest"},
		forbid: []string{"./raft/...", "./internal/apiserver/...", "./engine/...", "github.com/hashicorp/raft/...", "github.com/hashicorp/raft-wal/..."},
	},
	{
		name:   "6. controllers and the scheduler act on API objects only, never on the bus or nodes",
		parts:  []string{"./internal/controllers/...", "./internal/scheduler/..."},
		exempt: []string{"./internal/controllers/controllertest"},
		forbid: []string{"./internal/bus/...", "./internal/node/...", "./internal/streams/...", "github.com/nats-io/..."},
	},
	{
		name:   "7. the store imports nothing of skiff and nothing of Kubernetes",
		parts:  []string{"./raft/..."},
		forbid: []string{"./...", "k8s.io/...", "sigs.k8s.io/..."},
		allow:  []string{"./raft/..."},
	},
	{
		// engine is the one public package that wires internal ones; the
		// others cannot expose an internal type because they import none.
		name:   "8. public packages other than engine import nothing internal",
		parts:  []string{"./raft/...", "./runtime/...", "./sdk/...", "./netpol/...", "./conformance/..."},
		forbid: []string{"./internal/..."},
	},
}
