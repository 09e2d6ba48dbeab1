package engine

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/apiserver/serviceaccount"
	"github.com/skiffhq/skiff/internal/atomicfile"
	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/dirlock"
	"github.com/skiffhq/skiff/internal/node/join"
	"github.com/skiffhq/skiff/raft"
)

// A cluster of servers: how a server joins another's cluster, keeps its
// listeners' addresses across restarts, finds the other servers' buses, and
// leaves. See Config.Join and docs/rationale.md.

const (
	// serversPrefix holds one record (join.ServerInfo, JSON) per server,
	// written by the server itself at every start. Outside /registry/, so
	// the API never serves it.
	serversPrefix = "/skiff/servers/"
	// nodesPrefix is where the API stores Nodes: a Node's deletion is
	// the signal to remove a server from raft (kubectl delete node).
	nodesPrefix = "/registry/core/nodes/"
	// encryptionKeysFile is the Secrets' key ring in DataDir/pki, as the
	// API server keeps it.
	encryptionKeysFile = "encryption-keys"
	// ControlPlaneLabel marks the Nodes of servers, as kubeadm marks
	// control-plane nodes.
	ControlPlaneLabel = "node-role.kubernetes.io/control-plane"
)

// ErrRemoved: this server was removed from its cluster's raft
// configuration (kubectl delete node, or skiff server --leave). See
// Engine.Removed.
var ErrRemoved = errors.New("this server was removed from the cluster")

// clusterState is DataDir/cluster.json: a clustered server's listeners,
// reused on restarts so peers find it where they left it, and the other
// servers as last known, so a restart reconnects the bus's routes and
// --leave knows whom to ask.
type clusterState struct {
	// Joined: this server joined another's cluster and was made a voter.
	Joined bool `json:"joined,omitempty"`
	// Left: this server was removed from its cluster (kubectl delete
	// node, --leave). It does not start again: its raft log names a
	// cluster that no longer counts it.
	Left bool `json:"left,omitempty"`
	// RaftAddr and BusRoute are the bound listeners (the bus's client
	// listener is kept in DataDir/bus-listen).
	RaftAddr string `json:"raftAddr,omitempty"`
	BusRoute string `json:"busRoute,omitempty"`
	// ClusterDomain is the cluster's, for a joined server.
	ClusterDomain string `json:"clusterDomain,omitempty"`
	// Peers are the other servers, as last known.
	Peers []join.ServerInfo `json:"peers,omitempty"`
}

// clusterMember is the engine's cluster state while it runs.
type clusterMember struct {
	mu      sync.Mutex
	state   clusterState
	joining bool
	peerTLS *tls.Config // raft's and the bus routes' mutual TLS

	cs    kubernetes.Interface // in process, set once the API runs (not e.Clientset: Stop holds e.mu)
	jsBus *bus.Server          // a clustered server's JetStream, in process only (startJetStreamBus)

	removed     chan struct{}
	removedOnce sync.Once
}

func (e *Engine) clusterPath() string { return filepath.Join(e.cfg.DataDir, clusterFile) }

// ReadClusterState reads DataDir/cluster.json (empty when there is none).
func readClusterState(path string) (clusterState, error) {
	var st clusterState
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read %s: %w", clusterFile, err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("read %s: %w", clusterFile, err)
	}
	return st, nil
}

// saveCluster writes cluster.json; the caller holds cl.mu.
func (e *Engine) saveClusterLocked() error {
	b, err := json.MarshalIndent(e.cl.state, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(e.clusterPath(), append(b, '\n')); err != nil {
		return fmt.Errorf("record cluster state: %w", err)
	}
	return nil
}

// reuseAddr is the address to listen on: want as given, except that a
// port 0 on the recorded host (or no address at all, when recorded is
// set) reuses the recorded port.
func reuseAddr(want, recorded string) string {
	if recorded == "" {
		return want
	}
	if want == "" {
		return recorded
	}
	h, p, err := net.SplitHostPort(want)
	rh, _, rerr := net.SplitHostPort(recorded)
	if err != nil || rerr != nil || p != "0" || h != rh {
		return want
	}
	return recorded
}

// prepareCluster runs first in Start: it settles the listeners' addresses
// from DataDir/cluster.json and, on a server's first start with Join,
// fetches the cluster's bootstrap data and writes it into DataDir. Nothing
// is written before the server at Join has proved itself (the token's CA
// pin) and accepted the token, so a refused join leaves DataDir ready for a
// correct retry.
func (e *Engine) prepareCluster(ctx context.Context) error {
	st, err := readClusterState(e.clusterPath())
	if err != nil {
		return err
	}
	if st.Left {
		return fmt.Errorf("%s belongs to a server that left its cluster (kubectl delete node or --leave): "+
			"to join again, start with an empty data directory and --join", e.cfg.DataDir)
	}
	e.cl = &clusterMember{state: st, removed: make(chan struct{})}
	e.cl.joining = e.cfg.Join != "" && !st.Joined
	if e.cl.joining {
		if _, err := os.Stat(e.KubeconfigPath()); err == nil {
			return fmt.Errorf("join %s: %s already holds a cluster of its own (it has run as a server): use an empty data directory",
				e.cfg.Join, e.cfg.DataDir)
		}
		if e.cfg.RaftBind == "" {
			host, _, _ := net.SplitHostPort(e.cfg.APIListen)
			e.cfg.RaftBind = net.JoinHostPort(host, "0")
		}
		if e.cfg.BusListen == "" {
			host, _, _ := net.SplitHostPort(e.cfg.APIListen)
			e.cfg.BusListen = net.JoinHostPort(host, "0")
		}
		boot, err := join.FetchBootstrap(ctx, e.cfg.Join, e.cfg.JoinToken, e.cfg.JoinCA)
		if err != nil {
			return fmt.Errorf("join %s: %w", e.cfg.Join, err)
		}
		dir := filepath.Join(e.cfg.DataDir, pkiSubdir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create pki dir: %w", err)
		}
		for name, data := range map[string][]byte{"ca.key": []byte(boot.CAKey), "ca.crt": []byte(boot.CACert),
			encryptionKeysFile: boot.EncryptionKeys, serviceaccount.KeyFile: []byte(boot.ServiceAccountKey)} {
			if len(data) == 0 {
				continue
			}
			if err := atomicfile.Write(filepath.Join(dir, name), data); err != nil {
				return fmt.Errorf("join: write %s: %w", name, err)
			}
		}
		if e.given.ClusterPodCIDR == "" && e.given.PodCIDR == "" {
			e.given.ClusterPodCIDR = boot.ClusterPodCIDR
		}
		if e.given.ServiceCIDR == "" {
			e.given.ServiceCIDR = boot.ServiceCIDR
		}
		if e.cfg.Token == "" {
			e.cfg.Token = e.cfg.JoinToken // the cluster's secret becomes this directory's (loadToken)
		}
		st.ClusterDomain = boot.ClusterDomain
		st.Peers = slices.DeleteFunc(boot.Servers, func(s join.ServerInfo) bool { return s.Name == e.cfg.NodeName })
		e.cl.state = st
		e.log.Info("joining a cluster", "server", e.cfg.Join, "servers", len(boot.Servers))
	}
	if st.Joined || e.cl.joining {
		e.cfg.ClusterDomain = st.ClusterDomain
	}
	e.cfg.RaftBind = reuseAddr(e.cfg.RaftBind, st.RaftAddr)
	if e.cfg.RaftBind != "" {
		// A clustered server's bus joins the others' through routes,
		// which need its client listener.
		host, _, err := net.SplitHostPort(e.cfg.RaftBind)
		if err != nil {
			return fmt.Errorf("raft listen address %q: %w", e.cfg.RaftBind, err)
		}
		if e.cfg.BusListen == "" {
			e.cfg.BusListen = net.JoinHostPort(host, "0") // its port is kept in DataDir/bus-listen
		}
		if e.cfg.BusClusterListen == "" {
			e.cfg.BusClusterListen = net.JoinHostPort(host, "0")
		}
		e.cfg.BusClusterListen = reuseAddr(e.cfg.BusClusterListen, st.BusRoute)
	} else {
		e.cfg.BusClusterListen = ""
	}
	return nil
}

// busRoutes are the bus route addresses of the other servers as last
// known.
func (e *Engine) busRoutes() []string {
	e.cl.mu.Lock()
	defer e.cl.mu.Unlock()
	var rs []string
	for _, p := range e.cl.state.Peers {
		if p.BusRoute != "" && p.Name != e.cfg.NodeName {
			rs = append(rs, p.BusRoute)
		}
	}
	return rs
}

// joinRaft asks the server at Join to make this one a voter, once its
// raft listener is open, and records the membership.
func (e *Engine) joinRaft(ctx context.Context) error {
	if !e.cl.joining {
		return nil
	}
	if err := join.AddVoter(ctx, e.cfg.Join, e.cfg.JoinToken, e.cfg.JoinCA, e.cfg.NodeName, e.store.Addr()); err != nil {
		return fmt.Errorf("join %s as a voter: %w", e.cfg.Join, err)
	}
	e.cl.mu.Lock()
	defer e.cl.mu.Unlock()
	e.cl.state.Joined = true
	e.cl.joining = false
	e.log.Info("joined the cluster as a raft voter", "server", e.cfg.Join, "raft_addr", e.store.Addr())
	return e.saveClusterLocked()
}

// recordListeners writes the bound listeners into cluster.json, for the
// next start. A server with no raft listener records nothing.
func (e *Engine) recordListeners() error {
	if e.store.Addr() == "" {
		return nil
	}
	e.cl.mu.Lock()
	defer e.cl.mu.Unlock()
	e.cl.state.RaftAddr = e.store.Addr()
	e.cl.state.BusRoute = e.bus.ClusterAddr()
	return e.saveClusterLocked()
}

// selfInfo is this server's record.
func (e *Engine) selfInfo() join.ServerInfo {
	api := strings.TrimPrefix(e.api.URL(), "https://")
	return join.ServerInfo{Name: e.cfg.NodeName, API: api, Raft: e.store.Addr(), BusRoute: e.bus.ClusterAddr(), BusURL: e.busURL()}
}

// startCluster runs a clustered server's background work until Stop:
// recording itself in the store, keeping cluster.json's peers current, and
// removing servers whose Node is deleted from raft.
func (e *Engine) startCluster() {
	if e.store.Addr() == "" {
		return
	}
	if cfg, err := e.restConfigLocked(); err == nil {
		if cs, err := kubernetes.NewForConfig(cfg); err == nil {
			e.cl.mu.Lock()
			e.cl.cs = cs
			e.cl.mu.Unlock()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); e.recordSelfAndPeers(ctx) }()
	go func() { defer wg.Done(); e.watchNodeDeletions(ctx) }()
	e.stoppers = append(e.stoppers, func() { cancel(); wg.Wait() })
}

// peerRefresh is how often a server rereads the server records into
// cluster.json: only a restart uses them, so it need not be quick.
const peerRefresh = 5 * time.Second

func (e *Engine) recordSelfAndPeers(ctx context.Context) {
	self := e.selfInfo()
	val, _ := json.Marshal(self)
	key := serversPrefix + e.cfg.NodeName
	recorded := false
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	last := time.Time{}
	for {
		if !recorded {
			if err := e.putRecord(ctx, key, val); err == nil {
				recorded = true
			} else if ctx.Err() == nil {
				e.log.Debug("server record not written yet", "err", err)
			}
		}
		if recorded && time.Since(last) >= peerRefresh {
			last = time.Now()
			if peers, err := e.serverRecords(ctx, true); err == nil {
				e.updatePeers(peers)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Engine) putRecord(ctx context.Context, key string, val []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, _, err := e.store.Get(ctx, key, raft.ReadOptions{})
	switch {
	case errors.Is(err, raft.ErrNotFound):
		_, err = e.store.Create(ctx, key, val)
	case err == nil && string(kv.Value) != string(val):
		_, err = e.store.Update(ctx, key, val, kv.ModRev)
	}
	return err
}

// serverRecords lists the servers' records (stale: from this server's
// state, fine for routes and bus addresses).
func (e *Engine) serverRecords(ctx context.Context, stale bool) ([]join.ServerInfo, error) {
	res, err := e.store.List(ctx, serversPrefix, raft.ListOptions{ReadOptions: raft.ReadOptions{Stale: stale}, Limit: 1000})
	if err != nil {
		return nil, err
	}
	var out []join.ServerInfo
	for _, kv := range res.KVs {
		var s join.ServerInfo
		if json.Unmarshal(kv.Value, &s) == nil && s.Name != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

func (e *Engine) updatePeers(all []join.ServerInfo) {
	peers := slices.DeleteFunc(all, func(s join.ServerInfo) bool { return s.Name == e.cfg.NodeName })
	e.cl.mu.Lock()
	defer e.cl.mu.Unlock()
	if slices.Equal(peers, e.cl.state.Peers) {
		return
	}
	e.cl.state.Peers = peers
	if err := e.saveClusterLocked(); err != nil {
		e.log.Warn("cluster peers not recorded", "err", err)
	}
}

// watchNodeDeletions removes a server from raft when its Node is deleted
// (kubectl delete node), as Kubernetes removes what belonged to a deleted
// node. Every server watches and asks (the change is forwarded to the
// leader and is idempotent), so the removal happens while any server
// runs. A server that sees its own Node go reports ErrRemoved (Removed).
func (e *Engine) watchNodeDeletions(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := e.store.Watch(ctx, nodesPrefix, e.store.Rev())
		if err != nil {
			e.log.Warn("watch nodes for server removals", "err", err)
			if !sleepCtx(ctx, time.Second) {
				return
			}
			continue
		}
		for ev := range w.Events() {
			if ev.Type != raft.Deleted {
				continue
			}
			name := strings.TrimPrefix(ev.KV.Key, nodesPrefix)
			if err := e.removeServer(ctx, name, false); err != nil && !errors.Is(err, errNotMember) {
				e.log.Warn("server's Node deleted but the server is still in raft", "server", name, "err", err)
			}
		}
		w.Stop()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

var errNotMember = errors.New("not a member of the cluster")

// removeServer takes name out of the raft configuration and deletes its
// server record (and, with deleteNode, its Node). Removing the last voter is
// refused: the cluster would be gone.
func (e *Engine) removeServer(ctx context.Context, name string, deleteNode bool) error {
	ms, err := e.store.Members()
	if err != nil {
		return err
	}
	voters, found := 0, false
	for _, m := range ms {
		if m.Voter {
			voters++
		}
		found = found || m.ID == name
	}
	if found && voters <= 1 {
		return fmt.Errorf("%s is the cluster's only server: removing it would end the cluster", name)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if deleteNode {
		// The Node goes first, while the server still applies the log: its
		// deletion is how the server itself learns it is leaving (Removed).
		e.cl.mu.Lock()
		cs := e.cl.cs
		e.cl.mu.Unlock()
		if cs == nil {
			return errors.New("the server is still starting: try again")
		}
		if err := cs.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete the Node of %s: %w", name, err)
		}
	}
	if found {
		if err := e.store.RemoveServer(ctx, name); err != nil {
			return fmt.Errorf("remove %s from raft: %w", name, err)
		}
		e.log.Info("server removed from the cluster", "server", name)
	}
	if _, err := e.store.Delete(ctx, serversPrefix+name, 0); err != nil && !errors.Is(err, raft.ErrNotFound) {
		e.log.Warn("server record not deleted", "server", name, "err", err)
	}
	if name == e.cfg.NodeName {
		e.cl.mu.Lock()
		e.cl.state.Left = true
		if err := e.saveClusterLocked(); err != nil {
			e.log.Warn("left the cluster, but not recorded", "err", err)
		}
		e.cl.mu.Unlock()
		e.cl.removedOnce.Do(func() { close(e.cl.removed) })
	}
	if !found {
		return fmt.Errorf("%s: %w", name, errNotMember)
	}
	return nil
}

// Removed is closed when this server has been removed from its cluster
// (its Node deleted, or --leave): it should stop, as a deleted kubelet's
// node would otherwise register again. `skiff server` exits.
func (e *Engine) Removed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cl == nil {
		return nil
	}
	return e.cl.removed
}

// Members is the raft configuration: every server of the cluster.
func (e *Engine) Members() ([]raft.Member, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.store == nil {
		return nil, ErrNotStarted
	}
	return e.store.Members()
}

// clusterRoutes are the API port's handlers for joining servers, behind the
// cluster token.
func (e *Engine) clusterRoutes() map[string]http.Handler {
	members := e.authenticate(http.HandlerFunc(e.serveMembers))
	return map[string]http.Handler{
		join.BootstrapPath:     e.authenticate(http.HandlerFunc(e.serveBootstrap)),
		join.MembersPath:       members,
		join.MembersPath + "/": members,
		join.BusInfoPath:       e.authenticate(http.HandlerFunc(e.serveBusInfo)),
	}
}

func (e *Engine) serveBusInfo(w http.ResponseWriter, r *http.Request) {
	info := join.BusInfo{URL: e.busURL(), CA: string(e.busCA), ClusterDNS: e.clusterDNS(), ClusterDomain: e.cfg.ClusterDomain}
	if recs, err := e.serverRecords(r.Context(), true); err == nil {
		for _, s := range recs {
			if s.BusURL != "" {
				info.URLs = append(info.URLs, s.BusURL)
			}
			if s.API != "" {
				info.Servers = append(info.Servers, s.API)
			}
		}
	}
	if info.URL != "" && !slices.Contains(info.URLs, info.URL) {
		info.URLs = append([]string{info.URL}, info.URLs...)
	}
	join.InfoHandler(info).ServeHTTP(w, r)
}

func (e *Engine) serveBootstrap(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, "GET only")
		return
	}
	if e.store.Addr() == "" {
		writeStatus(w, http.StatusConflict, metav1.StatusReasonConflict,
			"this server has no raft listener, so no server can join it: restart it with --raft-listen HOST:PORT")
		return
	}
	dir := filepath.Join(e.cfg.DataDir, pkiSubdir)
	var b join.Bootstrap
	for name, dst := range map[string]*string{"ca.crt": &b.CACert, "ca.key": &b.CAKey} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "read the cluster CA: "+err.Error())
			return
		}
		*dst = string(data)
	}
	keys, err := os.ReadFile(filepath.Join(dir, encryptionKeysFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "read the encryption keys: "+err.Error())
		return
	}
	b.EncryptionKeys = keys
	// The API server made the key at its first start, before any join.
	saKey, err := os.ReadFile(filepath.Join(dir, serviceaccount.KeyFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "read the service account key: "+err.Error())
		return
	}
	b.ServiceAccountKey = string(saKey)
	b.ClusterPodCIDR, b.ServiceCIDR, b.ClusterDomain = e.cfg.ClusterPodCIDR, e.cfg.ServiceCIDR, e.cfg.ClusterDomain
	recs, err := e.serverRecords(r.Context(), true)
	if err != nil {
		writeStatus(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "list servers: "+err.Error())
		return
	}
	if !slices.ContainsFunc(recs, func(s join.ServerInfo) bool { return s.Name == e.cfg.NodeName }) {
		recs = append(recs, e.selfInfo()) // not recorded yet
	}
	b.Servers = recs
	writeJSON(w, b)
}

func (e *Engine) serveMembers(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, join.MembersPath), "/")
	switch {
	case r.Method == http.MethodGet && name == "":
		ms, err := e.store.Members()
		if err != nil {
			writeStatus(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, err.Error())
			return
		}
		leader, _ := e.store.Leader()
		out := make([]join.Member, 0, len(ms))
		for _, m := range ms {
			out = append(out, join.Member{ID: m.ID, Addr: m.Addr, Voter: m.Voter, Leader: m.ID == leader})
		}
		writeJSON(w, out)
	case r.Method == http.MethodPost && name == "":
		var m join.Member
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&m); err != nil {
			writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "a member as JSON ({id, addr}): "+err.Error())
			return
		}
		if err := validNodeName(m.ID); err != nil {
			writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
			return
		}
		if _, _, err := net.SplitHostPort(m.Addr); err != nil {
			writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, fmt.Sprintf("raft address %q: %v", m.Addr, err))
			return
		}
		if e.store.Addr() == "" {
			writeStatus(w, http.StatusConflict, metav1.StatusReasonConflict,
				"this server has no raft listener: restart it with --raft-listen HOST:PORT")
			return
		}
		if err := e.store.AddVoter(r.Context(), m.ID, m.Addr); err != nil {
			writeStatus(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "add voter: "+err.Error())
			return
		}
		e.log.Info("server joined the cluster", "server", m.ID, "raft_addr", m.Addr)
		writeJSON(w, m)
	case r.Method == http.MethodDelete && name != "":
		err := e.removeServer(r.Context(), name, true)
		switch {
		case errors.Is(err, errNotMember):
			writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, err.Error())
		case err != nil:
			writeStatus(w, http.StatusConflict, metav1.StatusReasonConflict, err.Error())
		default:
			writeJSON(w, metav1.Status{Status: metav1.StatusSuccess})
		}
	default:
		writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed,
			"GET or POST "+join.MembersPath+", DELETE "+join.MembersPath+"/NAME")
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// writeStatus answers an error as a Kubernetes Status, as the API does.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code)})
}

// Leave removes the server whose data directory is dataDir from its
// cluster: it asks the other servers it knows (DataDir/cluster.json), in
// turn, with the token in DataDir, to remove it from raft and delete its
// Node. The server may be running (it then stops: see Removed) or not.
func Leave(ctx context.Context, dataDir string) error {
	name, err := os.ReadFile(filepath.Join(dataDir, nodeNameFile))
	if err != nil {
		return fmt.Errorf("leave: %s is not a server's data directory: %w", dataDir, err)
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, tokenFile))
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	st, err := readClusterState(filepath.Join(dataDir, clusterFile))
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	self := strings.TrimSpace(string(name))
	var errs []error
	for _, p := range st.Peers {
		if p.Name == self || p.API == "" {
			continue
		}
		err := join.RemoveMember(ctx, p.API, string(tok), nil, self)
		if err == nil {
			// A running server records it itself, when it sees its Node
			// go; a stopped one is recorded here.
			lock, err := dirlock.Acquire(dataDir)
			if err != nil {
				return nil
			}
			defer lock.Release()
			st.Left = true
			b, err := json.MarshalIndent(st, "", "  ")
			if err != nil {
				return err
			}
			return atomicfile.Write(filepath.Join(dataDir, clusterFile), append(b, '\n'))
		}
		errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return fmt.Errorf("leave: %s knows no other server of its cluster (%s)", dataDir, clusterFile)
	}
	return fmt.Errorf("leave: no server removed %s: %w", self, errors.Join(errs...))
}

// startJetStreamBus starts, for a clustered server, the in-process bus that
// holds its JetStream (the embedded registry and pods' key-value stores),
// in the same directory a single server's bus keeps it. nats-server runs
// JetStream in a route cluster only as a JetStream cluster, which elects
// no leader with fewer than two servers; a first server alone would have
// no registry. So each server keeps its own, unreplicated (see
// docs/rationale.md).
func (e *Engine) startJetStreamBus(ctx context.Context) error {
	if e.cfg.BusClusterListen == "" || e.cl.peerTLS == nil {
		return nil
	}
	var err error
	e.cl.jsBus, err = bus.Start(ctx, bus.Config{Name: e.cfg.NodeName + "-jetstream", Logger: e.log,
		JetStreamDir: filepath.Join(e.cfg.DataDir, busSubdir)})
	if err != nil {
		return fmt.Errorf("start the JetStream bus: %w", err)
	}
	js := e.cl.jsBus
	e.stoppers = append(e.stoppers, func() { js.Close() })
	return nil
}

// jetStreamConn is a control-plane connection to the bus that holds
// JetStream.
func (e *Engine) jetStreamConn(ctx context.Context, name string) (*bus.Conn, error) {
	if e.cl.jsBus != nil {
		return e.cl.jsBus.Connect(ctx, name)
	}
	return e.bus.Connect(ctx, name)
}
