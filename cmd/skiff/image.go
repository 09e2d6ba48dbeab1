package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/skiffhq/skiff/engine"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage images in the cluster's embedded registry",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newImageImportCmd())
	return cmd
}

func newImageImportCmd() *cobra.Command {
	var kubeconfig string
	cmd := &cobra.Command{
		Use:   "import [--kubeconfig FILE] FILE NAME:TAG",
		Short: "Put a Wasm module into the cluster's embedded registry, for every node",
		Long: `Build an OCI image from a Wasm module (.wasm) and push it to the embedded
registry of the cluster the kubeconfig points at. Afterwards a pod's
"image: NAME:TAG" resolves to it on every node, with no other registry.

FILE is a raw Wasm module (it must start with the Wasm magic number). OCI
image layouts and tarballs are not accepted; push those with any OCI client
(crane, oras, docker) to the API server's address, with the kubeconfig's
token as the password.

NAME is a repository path without a registry host ("hello", "demo/app");
TAG defaults to "latest". The image has one
application/vnd.wasm.content.layer.v1+wasm layer and a wasip1/wasm config and
no timestamps, as a node's own import builds it, so the same module gives the
same digest everywhere. It records no entrypoint: pods without "command" get
argv[0] = the module's name (NAME's last path element, "app" for demo/app),
as a container's entrypoint would be, and their "args" after it.

The kubeconfig is --kubeconfig, else $KUBECONFIG, else ~/.kube/config; the
push goes to its server over HTTPS with its CA and credentials.

On success it prints the pinned reference, HOST/NAME:TAG@sha256:… (HOST the
embedded registry's name, which pods may also use).`,
		Example: "  skiff image import hello.wasm hello:1\n  skiff image import --kubeconfig data/kubeconfig.yaml app.wasm demo/app:v2",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, nameTag := args[0], args[1]
			wasm, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			if len(wasm) < 8 || !bytes.HasPrefix(wasm, []byte("\x00asm")) {
				return fmt.Errorf("%s is not a Wasm module (no \\0asm magic number); OCI layouts and tarballs are not supported", file)
			}
			rc, err := loadKubeconfig(kubeconfig)
			if err != nil {
				return err
			}
			ref, err := engine.PushImage(cmd.Context(), rc, wasm, nameTag)
			if errors.Is(err, engine.ErrPushUnauthorized) {
				return fmt.Errorf("the server refused the kubeconfig's credentials: %w", err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ref)
			return nil
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, else ~/.kube/config)")
	return cmd
}

// loadKubeconfig reads the kubeconfig the way kubectl does: path if set,
// else $KUBECONFIG, else ~/.kube/config; the current context.
func loadKubeconfig(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return rc, nil
}
