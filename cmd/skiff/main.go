// Command skiff runs a skiff cluster member and its tools. It is a thin shell
// over package engine: flags become an engine.Config, nothing more.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// shutdownGrace bounds how long the process lives after SIGINT or SIGTERM:
// the commands stop their engine within 30s, and whatever it may be
// blocked on, the process ends at this deadline or at a second signal.
const shutdownGrace = 40 * time.Second

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		cancel() // the command stops cleanly
		select {
		case sig = <-sigs:
			fmt.Fprintf(os.Stderr, "skiff: second %v: exiting now\n", sig)
		case <-time.After(shutdownGrace):
			fmt.Fprintf(os.Stderr, "skiff: not stopped %v after %v: exiting now\n", shutdownGrace, sig)
		}
		os.Exit(1)
	}()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "skiff:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	var logLevel string
	root := &cobra.Command{
		Use:           "skiff",
		Short:         "A WebAssembly-first orchestration engine that speaks the Kubernetes API",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
			return nil
		},
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	root.AddCommand(newServerCmd(), newKubeconfigCmd(), newBenchCmd(), newVersionCmd(), newImageCmd(), newAgentCmd())
	return root
}
