package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/engine"
)

func newAgentCmd() *cobra.Command {
	var cfg engine.WorkerConfig
	var caFile string
	var servers []string
	var tok tokenFlags
	cmd := &cobra.Command{
		Use:   "agent --server HOST:PORT[,HOST:PORT...] --token-file FILE --data-dir DIR --node-name NAME",
		Short: "Join a worker node: a node agent that runs the pods bound to it",
		Long: `Join this machine to a cluster as a worker node. HOST:PORT is a server's API address (give
several, or repeat --server, for a cluster of servers); the agent asks them in turn where the bus
listens, gets the node's own bus credential and client certificate with the cluster token (kept in
DATA-DIR/node/identity) and connects as itself. The agent then registers its Node and runs the pods
the scheduler binds to it. It reaches the control plane only through the bus; whenever that connection
breaks it asks the servers again, so it follows a server restarted on another port or moves to another
server, and its pods keep running meanwhile.

The token is the server's DATA-DIR/token, K10<sha256 of the cluster CA>::server:<secret>: the agent
checks the API's and the bus's certificates against that CA and trusts nothing on first use. Give it
with --token-file or $SKIFF_TOKEN rather than --token, which local users see in ps. A bare secret (a
token from before the CA hash) is refused unless --ca-file gives the cluster CA (DATA-DIR/pki/ca.crt).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Logger = slog.Default()
			var err error
			if cfg.Token, err = tok.value(); err != nil {
				return err
			}
			if cfg.Token == "" {
				return errors.New("the cluster token is required: --token-file, $" + tokenEnv + " or --token (the server's DATA-DIR/token)")
			}
			cfg.Servers = servers
			if caFile != "" {
				ca, err := os.ReadFile(caFile)
				if err != nil {
					return err
				}
				cfg.CA = ca
			}
			ctx := cmd.Context()
			w, err := engine.StartWorker(ctx, cfg)
			if err != nil {
				return err
			}
			<-ctx.Done() // SIGINT or SIGTERM
			slog.Info("shutting down")
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return w.Stop(stopCtx)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&servers, "server", nil, "servers' API addresses, HOST:PORT (comma-separated or repeated; any of the cluster's servers)")
	addTokenFlags(cmd, &tok, "the cluster token (the server's DATA-DIR/token)")
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "where the node keeps its modules, compile cache and pod data")
	f.StringVar(&cfg.NodeName, "node-name", "", "this node's name (default: the host name)")
	f.StringVar(&caFile, "ca-file", "", "the cluster CA (a server's DATA-DIR/pki/ca.crt) to check the servers' API and bus certificates with; not needed with a full token")
	f.StringSliceVar(&cfg.ImageHosts, "image-hosts", nil,
		`registries this node may pull from (host or host:port, "loopback" for any on a loopback address; default all)`)
	f.StringVar(&cfg.PodCIDR, "pod-cidr", "", "range this node's pod IPs come from (default: allocated by the server)")
	f.IntVar(&cfg.MaxPods, "max-pods", 110, "pods this node accepts")
	f.DurationVar(&cfg.MetricsInterval, "metrics-interval", 10*time.Second,
		"how often this node reports its pods' usage for kubectl top and the metrics APIs (rates are over one interval)")
	f.BoolVar(&cfg.DisableClusterDNS, "no-cluster-dns", false,
		"run no cluster DNS server on this node (it listens on the kube-dns ClusterIP, port 53, which needs root or CAP_NET_BIND_SERVICE)")
	addMemoryFlags(cmd, &cfg.DefaultPodMemoryLimit, &cfg.EvictionMemoryAvailable)
	addAgentFailoverFlags(cmd, &cfg)
	f.DurationVar(&cfg.CrashLoopBackOff, "crash-loop-backoff", 10*time.Second,
		"first delay before a crashed container restarts; it doubles up to 30 times this")
	cmd.MarkFlagRequired("server")
	return cmd
}
