package main

import (
	"github.com/spf13/cobra"

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
	cmd.AddCommand(store)
	return cmd
}
