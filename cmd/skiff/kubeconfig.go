package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffhq/skiff/internal/apiserver/pki"
	"github.com/skiffhq/skiff/internal/atomicfile"
)

func newKubeconfigCmd() *cobra.Command {
	var (
		dataDir, user, out string
		groups             []string
		days               int
	)
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the admin kubeconfig, or one for a user with a client certificate (--user)",
		Long: "Print DATA_DIR/kubeconfig.yaml, which `skiff server` writes when it starts. Use it with\n" +
			"  skiff kubeconfig > ~/.kube/config   or   kubectl --kubeconfig DATA_DIR/kubeconfig.yaml ...\n\n" +
			"With --user NAME, issue a client certificate signed by the cluster CA in DATA_DIR/pki\n" +
			"(CN NAME, O each --group) and print a kubeconfig that authenticates with it, no token:\n" +
			"  skiff kubeconfig --user alice --group dev -o alice.yaml\n" +
			"The API server sees the user NAME in the groups given (and system:authenticated); what the\n" +
			"user may do is up to RBAC. A certificate cannot be revoked: keep --days short.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			admin, err := os.ReadFile(filepath.Join(dataDir, "kubeconfig.yaml"))
			if err != nil {
				return fmt.Errorf("no kubeconfig yet (has `skiff server --data-dir %s` started?): %w", dataDir, err)
			}
			b := admin
			if user != "" {
				if b, err = userKubeconfig(dataDir, admin, user, groups, days); err != nil {
					return err
				}
			} else if len(groups) > 0 || cmd.Flags().Changed("days") {
				return fmt.Errorf("--group and --days need --user")
			}
			if out != "" && out != "-" {
				return atomicfile.Write(out, b) // 0600: it holds a credential
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", defaultDataDir(), "the server's data directory")
	f.StringVar(&user, "user", "", "issue a client certificate for this user name (its CN)")
	f.StringArrayVar(&groups, "group", nil, "a group of --user (its O); repeat for more")
	f.IntVar(&days, "days", 365, "how many days --user's certificate is valid")
	f.StringVarP(&out, "output", "o", "", "write the kubeconfig to this file (mode 0600) instead of stdout")
	return cmd
}

// userKubeconfig issues the user's certificate from the data directory's
// CA and returns a kubeconfig for the admin kubeconfig's server with it.
func userKubeconfig(dataDir string, admin []byte, user string, groups []string, days int) ([]byte, error) {
	if days <= 0 {
		return nil, fmt.Errorf("--days must be positive, not %d", days)
	}
	cfg, err := clientcmd.Load(admin)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dataDir, "kubeconfig.yaml"), err)
	}
	kctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok || cfg.Clusters[kctx.Cluster] == nil {
		return nil, fmt.Errorf("%s has no current cluster", filepath.Join(dataDir, "kubeconfig.yaml"))
	}
	cluster := cfg.Clusters[kctx.Cluster]
	cert, err := pki.IssueUserCert(filepath.Join(dataDir, "pki"), user, groups, time.Duration(days)*24*time.Hour)
	if err != nil {
		return nil, err
	}
	return pki.UserKubeconfig(cluster.Server, cluster.CertificateAuthorityData, user, cert)
}
