package main

import (
	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/engine"
)

// addAuditFlags adds kube-apiserver's audit log flags to `skiff server`.
func addAuditFlags(cmd *cobra.Command, cfg *engine.Config) {
	f := cmd.Flags()
	f.StringVar(&cfg.AuditLogPath, "audit-log", "",
		"write the API's audit log here: one JSON line per request, Kubernetes' audit.k8s.io/v1 Event (default: no audit log)")
	f.IntVar(&cfg.AuditLogMaxSizeMB, "audit-log-maxsize", 100, "rotate the audit log when it reaches this many megabytes")
	f.IntVar(&cfg.AuditLogMaxBackups, "audit-log-maxbackup", 1, "rotated audit logs to keep (the disk holds at most (this+1) × --audit-log-maxsize)")
	f.StringVar(&cfg.AuditLevel, "audit-level", "Metadata",
		"how much each audit event records: None, Metadata, Request or RequestResponse (Secrets and tokens are recorded at Metadata whatever the level)")
}
