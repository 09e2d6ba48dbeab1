package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

func newKubeconfigCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the admin kubeconfig of the server whose data is in --data-dir",
		Long: "Print DATA_DIR/kubeconfig.yaml, which `skiff server` writes when it starts. Use it with\n" +
			"  skiff kubeconfig > ~/.kube/config   or   kubectl --kubeconfig DATA_DIR/kubeconfig.yaml ...",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := os.ReadFile(filepath.Join(dataDir, "kubeconfig.yaml"))
			if err != nil {
				return fmt.Errorf("no kubeconfig yet (has `skiff server --data-dir %s` started?): %w", dataDir, err)
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the server's data directory")
	return cmd
}
