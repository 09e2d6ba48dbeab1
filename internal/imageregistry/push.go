package imageregistry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

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

// ParseNameTag splits NAME[:TAG]. NAME is a repository of the embedded
// registry, so a registry host in it is a mistake, except the embedded
// registry's own name.
func ParseNameTag(s string) (repo, tag string, err error) {
	s = strings.TrimPrefix(s, Host+"/")
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
