package main

import (
	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/engine"
	"github.com/skiffhq/skiff/internal/node/lifecycle"
)

// addFailoverFlags adds the flags that say how fast a failed node's pods
// move, named as kube-controller-manager's and kube-apiserver's, with the
// edge defaults engine.Config documents (docs/rationale.md).
func addFailoverFlags(cmd *cobra.Command, cfg *engine.Config) {
	f := cmd.Flags()
	f.DurationVar(&cfg.NodeHeartbeatInterval, "node-status-update-frequency", engine.DefaultNodeHeartbeatInterval,
		"how often this server's own node says it is alive (a bus message, not a raft write)")
	f.DurationVar(&cfg.NodeGracePeriod, "node-monitor-grace-period", lifecycle.DefaultGracePeriod,
		"how long a node may stay silent before it is marked Ready=Unknown and tainted node.kubernetes.io/unreachable")
	f.Int64Var(&cfg.DefaultNotReadyTolerationSeconds, "default-not-ready-toleration-seconds", engine.DefaultTolerationSeconds,
		"tolerationSeconds new pods get for the node.kubernetes.io/not-ready:NoExecute taint, unless they set their own (0: evicted at once)")
	f.Int64Var(&cfg.DefaultUnreachableTolerationSeconds, "default-unreachable-toleration-seconds", engine.DefaultTolerationSeconds,
		"tolerationSeconds new pods get for the node.kubernetes.io/unreachable:NoExecute taint, unless they set their own (0: evicted at once)")
	f.DurationVar(&cfg.StatefulSetFenceTimeout, "statefulset-fence-timeout", engine.DefaultStatefulSetFenceTimeout,
		"how long a worker may be cut off before it stops its StatefulSet pods; a lost node's pods are deleted for good "+
			"(their ordinals start elsewhere) only after this plus a margin. Agents' --statefulset-fence-timeout must not be longer. "+
			"Default: grace period + unreachable toleration; negative: never")
	// The flags' 0 means 0 seconds; the engine's zero value means its default.
	cmd.PreRunE = chainPreRun(cmd.PreRunE, func() {
		for _, v := range []*int64{&cfg.DefaultNotReadyTolerationSeconds, &cfg.DefaultUnreachableTolerationSeconds} {
			if *v == 0 {
				*v = -1
			}
		}
	})
}

// addAgentFailoverFlags adds the worker's side of the same settings.
func addAgentFailoverFlags(cmd *cobra.Command, cfg *engine.WorkerConfig) {
	f := cmd.Flags()
	f.DurationVar(&cfg.HeartbeatInterval, "node-status-update-frequency", engine.DefaultNodeHeartbeatInterval,
		"how often this node says it is alive (a bus message, not a raft write); keep it well under the servers' --node-monitor-grace-period")
	f.DurationVar(&cfg.FenceTimeout, "statefulset-fence-timeout", engine.DefaultStatefulSetFenceTimeout,
		"stop this node's StatefulSet pods after being cut off from every server this long (no longer than the servers' "+
			"--statefulset-fence-timeout); negative: never")
}

func chainPreRun(prev func(*cobra.Command, []string) error, then func()) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if prev != nil {
			if err := prev(cmd, args); err != nil {
				return err
			}
		}
		then()
		return nil
	}
}
