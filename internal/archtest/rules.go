package archtest

// controlPlane is what node-side code links none of: the store, the API
// server, the loops that act through it (controllers, scheduler) and the
// pieces that serve nodes from it (dispatch, lifecycle, server), engine,
// which wires them all, and the libraries only they need.
var controlPlane = []string{
	"./raft/...",
	"./internal/apiserver/...",
	"./internal/controllers/...",
	"./internal/scheduler/...",
	"./internal/node/dispatch/...",
	"./internal/node/lifecycle/...",
	"./internal/node/server/...",
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

// streamsSplit is why the node side still reaches API-side code: the agent
// imports internal/streams for its stream server (ServeNode, Backend), and
// the same package holds the API server's HTTP handlers for
// logs/exec/port-forward, which import internal/apiserver (PodRefFrom) and
// kubectl's streaming protocols (the kubelet's server, client-go's
// remotecommand and portforward, which bring k8s.io/apiserver and
// client-go/rest). The fix is to move the handlers (http.go, exec.go,
// logs.go, portforward.go, upgrade.go) to a package of their own beside the
// API server; then these tolerations fail as unneeded and go.
const streamsSplit = "internal/streams mixes the node's stream server with the API server's HTTP handlers"

// rules are skiff's architecture rules; docs/architecture.md states them in
// words, in this order. Adding a rule is adding a row.
var rules = []rule{
	{
		name:   "1. the node side never links the control plane",
		parts:  append(append([]string(nil), nodeSide...), "./internal/netpol/proxy/..."),
		forbid: controlPlane,
		tolerated: []toleratedImport{
			{"./internal/streams", "./internal/apiserver", streamsSplit},
			{"./internal/streams", "k8s.io/kubelet/pkg/cri/streaming/...", streamsSplit},
		},
	},
	{
		// Every API client goes through client-go/rest; the clientset,
		// informers and the dynamic client are named too for a clearer
		// report. (client-go/kubernetes/scheme, the type registry, is no
		// client.) The service proxy is to join the parts once it is fed
		// over the bus; today it watches Services through client-go.
		name:  "2. the node side reaches the control plane only over the bus",
		parts: nodeSide,
		forbid: []string{
			"k8s.io/client-go/rest/...",
			"k8s.io/client-go/kubernetes",
			"k8s.io/client-go/kubernetes/typed/...",
			"k8s.io/client-go/informers/...",
			"k8s.io/client-go/dynamic/...",
		},
		tolerated: []toleratedImport{
			{"./internal/streams", "./internal/apiserver", streamsSplit},
			{"./internal/streams", "k8s.io/client-go/tools/...", streamsSplit},
			{"./internal/streams", "k8s.io/kubelet/pkg/cri/streaming/...", streamsSplit},
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
		parts:  []string{"./internal/controllers/...", "./internal/scheduler/...", "./internal/node/dispatch/...", "./internal/node/lifecycle/...", "./internal/node/server/...", "./internal/imageregistry/..."},
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
