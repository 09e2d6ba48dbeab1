package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/internal/apibench"
	"github.com/skiffhq/skiff/internal/demo"
	"github.com/skiffhq/skiff/internal/demoapp"
	"github.com/skiffhq/skiff/internal/hbbench"
	"github.com/skiffhq/skiff/internal/nsbench"
	"github.com/skiffhq/skiff/internal/podbench"
	"github.com/skiffhq/skiff/internal/schedbench"
	"github.com/skiffhq/skiff/internal/storebench"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure this machine (prints ratios against a baseline run beside)"}
	var o storebench.Options
	store := &cobra.Command{
		Use:   "store",
		Short: "Write throughput, latency and disk bytes of the replicated store vs bbolt with fsync",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := storebench.Run(cmd.Context(), o, cmd.OutOrStdout())
			return err
		},
	}
	f := store.Flags()
	f.DurationVar(&o.Duration, "duration", 0, "how long each scenario writes (default 5s)")
	f.IntSliceVar(&o.Servers, "servers", nil, "store cluster sizes (default 1,3)")
	f.IntSliceVar(&o.Writers, "writers", nil, "concurrent writers (default 1,64)")
	f.IntVar(&o.ValueSize, "value-size", 0, "bytes per object (default 300)")
	f.StringVar(&o.Dir, "dir", "", "where to put the data (default a temporary directory; use a real disk)")
	var a apibench.Options
	api := &cobra.Command{
		Use:   "api",
		Short: "Create, get and list latency and throughput through the Kubernetes API vs directly on the store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := apibench.Run(cmd.Context(), a, cmd.OutOrStdout())
			return err
		},
	}
	af := api.Flags()
	af.IntVar(&a.Objects, "objects", 0, "ConfigMaps to create and read (default 2000)")
	af.IntVar(&a.Concurrency, "concurrency", 0, "concurrent clients (default 16)")
	af.IntVar(&a.Lists, "lists", 0, "lists of all objects per side (default 20)")
	af.StringVar(&a.Dir, "dir", "", "where to put the data (default a temporary directory)")
	var p podbench.Options
	pods := &cobra.Command{
		Use:   "pods",
		Short: "Pod create→Ready latency vs instantiating in wazero, memory per idle pod, SDK handler vs native req/s",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			wasm, err := demo.Module()
			if err != nil {
				return err
			}
			p.HandlerWasm = wasm
			p.NativeHandler = demoapp.New(io.Discard, func() {})
			_, err = podbench.Run(cmd.Context(), p, cmd.OutOrStdout())
			return err
		},
	}
	pf := pods.Flags()
	pf.IntSliceVar(&p.Counts, "pods", nil, "batch sizes (default 1,100,1000)")
	pf.IntVar(&p.Concurrency, "concurrency", 0, "concurrent creating clients (default 16)")
	pf.IntVar(&p.Requests, "requests", 0, "requests per side of the handler comparison (default 20000)")
	pf.StringVar(&p.Dir, "dir", "", "the engine's data directory (default a temporary directory)")
	var n nsbench.Options
	namespaces := &cobra.Command{
		Use:   "namespace",
		Short: "Time to delete a namespace of 1,000 and 10,000 objects (namespace controller) vs as many raw store deletes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := nsbench.Run(cmd.Context(), n, cmd.OutOrStdout())
			return err
		},
	}
	nf := namespaces.Flags()
	nf.IntSliceVar(&n.Sizes, "objects", nil, "objects per namespace, one namespace each (default 1000,10000)")
	nf.IntVar(&n.Concurrency, "concurrency", 0, "concurrent creating clients and raw store deleters (default 16)")
	nf.DurationVar(&n.Timeout, "timeout", 0, "bound on each namespace's deletion (default 10m)")
	nf.StringVar(&n.Dir, "dir", "", "where to put the data (default a temporary directory)")
	var sb schedbench.Options
	sched := &cobra.Command{
		Use:   "sched",
		Short: "Pods bound per second over many fake nodes vs the store's raw write rate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := schedbench.Run(cmd.Context(), sb, cmd.OutOrStdout())
			return err
		},
	}
	sf := sched.Flags()
	sf.IntSliceVar(&sb.Nodes, "nodes", nil, "fake node counts (default 100,1000)")
	sf.IntSliceVar(&sb.Pods, "pods", nil, "pending pods per scenario (default 1000,10000)")
	sf.IntVar(&sb.Writers, "writers", 0, "concurrent writers creating pods and measuring the store (default 64)")
	sf.StringVar(&sb.Dir, "dir", "", "where to put the data (default a temporary directory)")
	var hb hbbench.Options
	heartbeats := &cobra.Command{
		Use:   "heartbeats",
		Short: "Node heartbeats over the embedded bus vs the same heartbeats written to raft as Node status updates",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := hbbench.Run(cmd.Context(), hb, cmd.OutOrStdout())
			return err
		},
	}
	hf := heartbeats.Flags()
	hf.IntVar(&hb.Agents, "agents", 0, "simulated agents, each with its own bus connection and Node (default 1000)")
	hf.IntVar(&hb.BusRounds, "bus-rounds", 0, "heartbeats per agent over the bus (default 20)")
	hf.IntVar(&hb.RaftRounds, "raft-rounds", 0, "heartbeats per agent written to raft (default 2)")
	hf.IntVar(&hb.Writers, "writers", 0, "agents publishing or writing at once (default 64)")
	hf.StringVar(&hb.APIListen, "api-listen", "", "the benchmark API server's address (default 127.0.0.1:0)")
	hf.StringVar(&hb.Dir, "dir", "", "where to put the data (default a temporary directory)")
	cmd.AddCommand(store, api, pods, namespaces, sched, heartbeats)
	return cmd
}
