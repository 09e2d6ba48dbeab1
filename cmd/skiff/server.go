package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/engine"
	"github.com/skiffhq/skiff/internal/demo"
)

func newServerCmd() *cobra.Command {
	var cfg engine.Config
	var withDemo bool
	var busListen, raftListen, caFile string
	var leave bool
	var tok tokenFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a server: the replicated store and the bus (single node by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Logger = slog.Default()
			if leave {
				ctx, cancel := context.WithTimeout(cmd.Context(), 60*time.Second)
				defer cancel()
				if err := engine.Leave(ctx, cfg.DataDir); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s left its cluster\n", cfg.DataDir)
				return nil
			}
			if cfg.NodeName == "" {
				// A restart needs only --data-dir: the name is the one
				// the directory was first started with.
				if b, err := os.ReadFile(filepath.Join(cfg.DataDir, "node-name")); err == nil {
					cfg.NodeName = strings.TrimSpace(string(b))
				}
			}
			var err error
			if cfg.Token, err = tok.value(); err != nil {
				return err
			}
			if err := joinFlags(&cfg, caFile); err != nil {
				return err
			}
			host, _, err := net.SplitHostPort(cfg.APIListen)
			if err != nil {
				return fmt.Errorf("--api-listen %q: %w", cfg.APIListen, err)
			}
			switch raftListen {
			case "none":
				cfg.RaftBind = ""
			case "":
				// Ready for servers to join: raft listens where the API
				// does, on a port chosen once and kept in the data
				// directory, with mutual TLS from the cluster CA.
				cfg.RaftBind = net.JoinHostPort(host, "0")
			default:
				cfg.RaftBind = raftListen
			}
			switch busListen {
			case "none":
				cfg.BusListen = ""
			case "":
				// Agents join through the bus: by default it listens where the
				// API does, on a port of its own, with TLS, for the node
				// identity and the cluster token only.
				cfg.BusListen = net.JoinHostPort(host, "0")
			default:
				cfg.BusListen = busListen
			}
			e, err := engine.New(cfg)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if err := e.Start(ctx); err != nil {
				return err
			}
			if withDemo {
				installDemo(ctx, e, cmd.OutOrStdout())
			}
			select {
			case <-ctx.Done(): // SIGINT or SIGTERM
				slog.Info("shutting down")
			case <-e.Removed():
				slog.Info("removed from the cluster (its Node was deleted, or --leave): shutting down")
			}
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return e.Stop(stopCtx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "where the server keeps its state")
	f.StringVar(&cfg.NodeName, "node-name", "", "this member's name (default: the one DATA-DIR was first started with, else the host name)")
	f.StringVar(&raftListen, "raft-listen", "",
		`HOST:PORT where raft and write forwarding listen, with mutual TLS from the cluster CA (default the API's host, a port chosen at the first start and kept in the data directory; "none" for a single server that no other may join)`)
	f.StringVar(&cfg.BusClusterListen, "bus-route-listen", "",
		"HOST:PORT where the bus accepts routes from the other servers' buses, with mutual TLS from the cluster CA (default the raft listener's host, a port chosen at the first start and kept in the data directory)")
	f.DurationVar(&cfg.RaftHeartbeatTimeout, "raft-heartbeat-timeout", 300*time.Millisecond,
		"how long servers wait for the raft leader before electing another: most of the time a cluster takes to fail over (raise it on slow links)")
	f.StringVar(&cfg.Join, "join", "", "HOST:PORT of a running server's API: join its cluster as a raft voter (first start only; a restart needs only --data-dir)")
	f.StringVar(&caFile, "ca-file", "", "with --join and a token that is a bare secret: the cluster CA (the server's DATA-DIR/pki/ca.crt)")
	f.BoolVar(&leave, "leave", false, "remove the server of --data-dir (running or stopped) from its cluster, through the other servers, and exit")
	f.StringVar(&cfg.APIListen, "api-listen", "127.0.0.1:6443", "HTTPS address of the Kubernetes API")
	f.StringVar(&cfg.ServiceCIDR, "service-cidr", "",
		"range Service ClusterIPs are allocated from (default: 127.67.0.0/16, or the next loopback /16 no other skiff on this machine uses; chosen at the first start and kept in the data directory)")
	f.StringVar(&cfg.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain (Services are NAME.NAMESPACE.svc.DOMAIN)")
	f.BoolVar(&cfg.DisableClusterDNS, "no-cluster-dns", false,
		"run no cluster DNS server on this node (it listens on the kube-dns ClusterIP, port 53, which needs root or CAP_NET_BIND_SERVICE)")
	f.BoolVar(&cfg.DisableRBAC, "disable-rbac", false, "let every authenticated caller do anything (no RBAC or Node authorizer); for benchmarks and trusted single-user setups")
	f.StringVar(&busListen, "bus-listen", "", `where agents of other nodes reach the bus, HOST:PORT (default the API's host, any port; "none" for no agents)`)
	addTokenFlags(cmd, &tok, "the cluster token or secret: the secret of a new data directory, or with --join the token of the cluster to join (a server's DATA-DIR/token); must match DATA-DIR/token after (default: a random secret, kept in DATA-DIR/token)")
	f.BoolVar(&withDemo, "demo", false, "also run the demo app (a Deployment of Wasm pods behind a Service) and say how to reach it")
	f.StringVar(&cfg.PodCIDR, "pod-cidr", "", "range this node's pod IPs come from (default: a /20 of --cluster-pod-cidr)")
	f.StringVar(&cfg.ClusterPodCIDR, "cluster-pod-cidr", "",
		"range every node's pod range is carved from (default: 127.66.0.0/16, or the next loopback /16 no other skiff on this machine uses; chosen at the first start and kept in the data directory)")
	f.StringSliceVar(&cfg.ImageHosts, "image-hosts", nil,
		`registries this node may pull from (host or host:port, "loopback" for any on a loopback address; default all)`)
	f.IntVar(&cfg.MaxPods, "max-pods", 110, "pods this node accepts")
	f.DurationVar(&cfg.MetricsInterval, "metrics-interval", 10*time.Second,
		"how often this node reports its pods' usage for kubectl top and the metrics APIs (rates are over one interval)")
	addMemoryFlags(cmd, &cfg.DefaultPodMemoryLimit, &cfg.EvictionMemoryAvailable)
	addFailoverFlags(cmd, &cfg)
	addAuditFlags(cmd, &cfg)
	f.DurationVar(&cfg.CrashLoopBackOff, "crash-loop-backoff", 10*time.Second,
		"first delay before a crashed container restarts; it doubles up to 30 times this (the kubelet's 10s..5m)")
	return cmd
}

// installDemo installs the demo app and prints how to reach it. A demo that
// fails to come up is reported; the server keeps running.
func installDemo(ctx context.Context, e *engine.Engine, out io.Writer) {
	url, err := demo.Install(ctx, e, 2*time.Minute)
	if err != nil {
		slog.Error("demo app not ready", "err", err)
		return
	}
	fmt.Fprintf(out, `
skiff is running, with the demo app: Deployment %[1]q (2 Wasm pods) behind Service %[1]q.

  curl %[2]s

  export KUBECONFIG=%[3]s
  kubectl get pods,services -o wide
  kubectl logs deployment/%[1]s

`, demo.Name, url, e.KubeconfigPath())
}

// defaultDataDir is /var/lib/skiff for root, as system services keep their
// state, and ~/.local/share/skiff otherwise.
func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/skiff"
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "skiff")
	}
	return "skiff-data"
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "skiff", version())
		},
	}
}

// joinFlags makes the token (--token, --token-file, $SKIFF_TOKEN) the one
// to join with when --join is given, and reads --ca-file.
func joinFlags(cfg *engine.Config, caFile string) error {
	if cfg.Join == "" {
		if caFile != "" {
			return errors.New("--ca-file goes with --join")
		}
		return nil
	}
	if cfg.Token == "" {
		return errors.New("--join needs the cluster token: --token-file (or $" + tokenEnv + ", --token) with a server's DATA-DIR/token")
	}
	cfg.JoinToken = cfg.Token
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
		cfg.JoinCA = b
	}
	return nil
}
