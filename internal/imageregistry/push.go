package imageregistry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"k8s.io/client-go/rest"

	"github.com/skiffhq/skiff/runtime/image"
)

// ErrPushUnauthorized: the API server refused the credentials of the REST
// config (401).
var ErrPushUnauthorized = errors.New("registry: the server refused the credentials")

// Push puts a Wasm module into the embedded registry of the cluster rc
// points at, through the API server's /v2/ routes with rc's transport (its
// CA and credentials), as NAME:TAG (NAME a repository without a registry
// host, TAG "latest" when missing). It returns the pinned reference pods can
// use, "registry.skiff.local/NAME:TAG@sha256:…"; `image: NAME:TAG` resolves
// to it too.
func Push(ctx context.Context, rc *rest.Config, wasm []byte, nameTag string) (string, error) {
	u, err := url.Parse(rc.Host)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("registry: server %q is not a URL", rc.Host)
	}
	repo, tag, err := ParseNameTag(nameTag)
	if err != nil {
		return "", err
	}
	ref, err := name.NewTag(u.Host+"/"+repo+":"+tag, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("NAME:TAG %q: %w", nameTag, err)
	}
	img, err := image.WasmImage(wasm)
	if err != nil {
		return "", err
	}
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}
	// The REST config's transport carries its CA and credentials (token,
	// token file, client certificate) on every request.
	rt, err := rest.TransportFor(rc)
	if err != nil {
		return "", fmt.Errorf("registry: transport: %w", err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(rt),
		remote.WithAuth(authn.Anonymous), remote.WithUserAgent("skiff")); err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusUnauthorized {
			return "", fmt.Errorf("push %s to %s: %w (401 Unauthorized): %w", nameTag, u.Host, ErrPushUnauthorized, err)
		}
		return "", fmt.Errorf("push %s to %s: %w", nameTag, u.Host, err)
	}
	return fmt.Sprintf("%s/%s:%s@%s", Host, repo, tag, digest), nil
}

// ParseNameTag splits NAME[:TAG] (TAG "latest" when missing), read with the
// reference grammar and Docker's rule for what is a host. NAME is a
// repository of the embedded registry, kept as written ("hello" and
// "library/hello" are two repositories there; Resolve tries both for a
// Docker Hub name), so a registry host in it is a mistake, except the
// embedded registry's own name.
func ParseNameTag(s string) (repo, tag string, err error) {
	s = strings.TrimPrefix(s, Host+"/")
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return "", "", fmt.Errorf("NAME:TAG %q: %w", s, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return "", "", fmt.Errorf("NAME:TAG %q: give a tag, not a digest (the digest comes from the module)", s)
	}
	tag = "latest"
	if tagged, ok := named.(reference.Tagged); ok {
		tag = tagged.Tag()
	}
	// Normalisation put a name without a host on Docker Hub, as
	// "docker.io/[library/]NAME": NAME as written is then the familiar name
	// or the path. Anything else had a host written in it.
	repo = strings.TrimSuffix(s, ":"+tag)
	if reference.Domain(named) != dockerHub || (repo != reference.FamiliarName(named) && repo != reference.Path(named)) {
		return "", "", fmt.Errorf("NAME:TAG %q: NAME is a repository in the cluster's registry (like demo/app), without a registry host", s)
	}
	return repo, tag, nil
}
