package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/engine"
)

func newAgentCmd() *cobra.Command {
	var cfg engine.WorkerConfig
	var caFile, tokenFile string
	cmd := &cobra.Command{
		Use:   "agent --server HOST:PORT --token T --data-dir DIR --node-name NAME",
		Short: "Join a worker node: a node agent that runs the pods bound to it",
		Long: `Join this machine to a cluster as a worker node. HOST:PORT is a server's API address; the
agent asks it where its bus listens with the token (the server's DATA-DIR/token), gets the node's own
bus credential and client certificate (kept in DATA-DIR/node/identity) and connects as itself.
The agent then registers its Node and runs the pods the scheduler binds to it. It reaches the control
plane only through the bus.

The bus uses TLS: its certificate must chain to the cluster CA. Without --ca-file the agent trusts the
API's certificate on first contact and takes the cluster CA from that answer; give the CA (the server's
DATA-DIR/pki/ca.crt) to check both.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Logger = slog.Default()
			switch {
			case cfg.Token != "" && tokenFile != "":
				return errors.New("give --token or --token-file, not both")
			case tokenFile != "":
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				cfg.Token = string(b)
			}
			cfg.Token = strings.TrimSpace(cfg.Token)
			if cfg.Token == "" {
				return errors.New("the cluster token is required: --token or --token-file (the server's DATA-DIR/token)")
			}
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
	f.StringVar(&cfg.Server, "server", "", "a server's API address, HOST:PORT")
	f.StringVar(&cfg.Token, "token", "", "the cluster token (the server's DATA-DIR/token)")
	f.StringVar(&tokenFile, "token-file", "", "a file holding the cluster token, instead of --token")
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "where the node keeps its modules, compile cache and pod data")
	f.StringVar(&cfg.NodeName, "node-name", "", "this node's name (default: the host name)")
	f.StringVar(&caFile, "ca-file", "", "the cluster CA to check the server's API and bus certificates with")
	f.StringSliceVar(&cfg.ImageHosts, "image-hosts", nil,
		`registries this node may pull from (host or host:port, "loopback" for any on a loopback address; default all)`)
	f.StringVar(&cfg.PodCIDR, "pod-cidr", "", "range this node's pod IPs come from (default: allocated by the server)")
	f.IntVar(&cfg.MaxPods, "max-pods", 110, "pods this node accepts")
	f.DurationVar(&cfg.MetricsInterval, "metrics-interval", 10*time.Second,
		"how often this node reports its pods' usage for kubectl top and the metrics APIs (rates are over one interval)")
	f.BoolVar(&cfg.DisableClusterDNS, "no-cluster-dns", false,
		"run no cluster DNS server on this node (it listens on the kube-dns ClusterIP, port 53, which needs root or CAP_NET_BIND_SERVICE)")
	addMemoryFlags(cmd, &cfg.DefaultPodMemoryLimit, &cfg.EvictionMemoryAvailable)
	f.DurationVar(&cfg.CrashLoopBackOff, "crash-loop-backoff", 10*time.Second,
		"first delay before a crashed container restarts; it doubles up to 30 times this")
	cmd.MarkFlagRequired("server")
	return cmd
}
