// Package engine is skiff's front door: an orchestration engine that a Go
// program embeds, and that the skiff binary runs.
//
//	e, err := engine.New(engine.Config{DataDir: dir})
//	if err != nil { ... }
//	if err := e.Start(ctx); err != nil { ... } // returns once the member is ready
//	defer e.Stop(context.Background())
//	cs, _ := e.Clientset() // client-go, in process: no socket, no token
//
// A started Engine is one server of a cluster with everything in one
// process: the raft-replicated object store (package
// github.com/skiffhq/skiff/raft) with its log in DataDir, with no listening
// port unless Config.RaftBind asks for one (then with mutual TLS); the
// embedded NATS bus, with no listening port unless Config.BusListen asks for
// one (then TLS, and every client authenticates as one of the bus's
// identities); the
// Kubernetes API over HTTPS (Config.APIListen) with the controllers and the
// scheduler on the raft leader; and this machine's node: the node agent
// running Wasm pods in wazero (package github.com/skiffhq/skiff/runtime/wasm)
// and the Service proxy, with the pods' NetworkPolicies decided on the
// node (package internal/netpol/policy). StartWorker runs only a node,
// joined to a server over its bus, as `skiff agent` does. Everything else lives under
// internal/: an embedding program drives the cluster through the
// Kubernetes API (Clientset, DynamicClient, RESTConfig), records events
// with EventRecorder, and puts Wasm modules in the embedded registry with
// PushImage. docs/architecture.md draws the parts.
//
// Data directory layout (Config.DataDir):
//
//	lock             held by the one process using the directory (its pid inside)
//	node-name        the member's name; a restart with another name is refused
//	token            the cluster token (mode 0600), K10<sha256 of the CA>::server:<secret>: the
//	                 secret is the admin's API token and the bus's node password; servers and
//	                 agents join with the whole token, which pins the CA
//	cluster.json     a clustered server's listeners (kept across restarts) and its peers
//	kubeconfig.yaml  the admin kubeconfig for kubectl
//	pki/             the cluster CA, the API's and the bus's serving certificates, the Secret
//	                 encryption keys, the raft peer certificate (with RaftBind)
//	raft/            the raft log (raft-wal) and FSM snapshots
//	bus/             the embedded registry's JetStream files
//	registry/uploads/  image uploads in progress (emptied at start)
//	node/            the node's module store, compile cache, and pods' volumes and logs
//
// Threading: New, Start and Stop are called by one goroutine; the other
// methods may be used from any goroutine once Start has returned.
package engine
