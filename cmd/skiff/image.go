package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffhq/skiff/engine/registry"
	"github.com/skiffhq/skiff/runtime/image"
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
same digest everywhere.

The kubeconfig is --kubeconfig, else $KUBECONFIG, else ~/.kube/config; the
push goes to its server over HTTPS with its CA and credentials.

On success it prints the pinned reference, ` + registry.Host + `/NAME:TAG@sha256:….`,
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
			u, err := url.Parse(rc.Host)
			if err != nil || u.Host == "" {
				return fmt.Errorf("kubeconfig server %q is not a URL", rc.Host)
			}
			repo, tag, err := parseNameTag(nameTag)
			if err != nil {
				return err
			}
			ref, err := name.NewTag(u.Host+"/"+repo+":"+tag, name.StrictValidation)
			if err != nil {
				return fmt.Errorf("NAME:TAG %q: %w", nameTag, err)
			}
			img, err := wasmImage(wasm)
			if err != nil {
				return err
			}
			digest, err := img.Digest()
			if err != nil {
				return err
			}
			// The kubeconfig's transport carries its CA and credentials
			// (token, token file, client certificate) on every request.
			rt, err := rest.TransportFor(rc)
			if err != nil {
				return fmt.Errorf("kubeconfig: %w", err)
			}
			if err := remote.Write(ref, img, remote.WithContext(cmd.Context()), remote.WithTransport(rt),
				remote.WithAuth(authn.Anonymous), remote.WithUserAgent("skiff")); err != nil {
				var terr *transport.Error
				if errors.As(err, &terr) && terr.StatusCode == http.StatusUnauthorized {
					return fmt.Errorf("push %s to %s: the server refused the kubeconfig's credentials (401 Unauthorized): %w", nameTag, u.Host, err)
				}
				return fmt.Errorf("push %s to %s: %w", nameTag, u.Host, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s:%s@%s\n", registry.Host, repo, tag, digest)
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

// parseNameTag splits NAME[:TAG]. NAME is a repository of the embedded
// registry, so a registry host in it is a mistake, except the embedded
// registry's own name.
func parseNameTag(s string) (repo, tag string, err error) {
	s = strings.TrimPrefix(s, registry.Host+"/")
	if strings.Contains(s, "@") {
		return "", "", fmt.Errorf("NAME:TAG %q: give a tag, not a digest (the digest comes from the module)", s)
	}
	repo, tag = s, "latest"
	if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		repo, tag = s[:i], s[i+1:]
	}
	if first, _, ok := strings.Cut(repo, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return "", "", fmt.Errorf("NAME:TAG %q: NAME is a repository in the cluster's registry (like demo/app), without a registry host", s)
	}
	if repo == "" || tag == "" {
		return "", "", errors.New("NAME:TAG: empty name or tag")
	}
	return repo, tag, nil
}

// wasmImage is the OCI image of a module: one Wasm layer, a wasip1/wasm
// config, no timestamps. It is the image runtime/image's Store.Import
// gives a module (its builder is not exported); TestImageImport checks
// that both give the same digest.
func wasmImage(wasm []byte) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(wasm, image.MediaTypeWasmLayer))
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "wasip1", "wasm"
	return mutate.ConfigFile(img, cf)
}
