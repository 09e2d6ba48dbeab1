package imageregistry

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/distribution/reference"

	"github.com/skiffhq/skiff/internal/bus"
)

// manifestAccept is every manifest media type a HEAD in Resolve accepts.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"*/*",
}, ",")

// Client asks the embedded registry over the bus, for node agents.
type Client struct {
	http *http.Client
}

// NewClient returns a client that reaches the embedded registry through
// conn, a bus connection such as the node agent's.
func NewClient(conn *bus.Conn) *Client {
	return &Client{http: &http.Client{Transport: Transport(conn, nil)}}
}

// Docker Hub, the registry a reference without a host means, as the
// reference library spells it once normalised (it also reads
// index.docker.io so), and the host its API is served from, which some
// users write and the library leaves alone.
const (
	dockerHub        = "docker.io"
	dockerHubAPIHost = "registry-1.docker.io"
)

// Resolve maps a pod's image reference to the embedded registry when the
// image is there. A reference without a registry host ("hello:1",
// "demo/app:v2") or with Docker Hub's ("docker.io/demo/app:v2",
// "docker.io/library/hello:1") names the repository as pushed, with or
// without Docker's implicit "library/" (both spellings are tried, the
// written one first); a missing tag is "latest"; a digest must belong to
// the repository. When the embedded registry has it, ref is
// "registry.skiff.local/<repo>:<tag>" (or "…@<digest>") and ok is true.
// A reference to another registry, an unparsable one or one the embedded
// registry lacks gives ok false and no error: pull it as written. err is
// set only when the embedded registry could not be asked; callers then fall
// back to the reference as written.
func (c *Client) Resolve(ctx context.Context, image string) (ref string, ok bool, err error) {
	repos, tag, digest, ok := candidates(image)
	if !ok {
		return "", false, nil
	}
	id := tag
	if digest != "" {
		id = digest
	}
	for _, repo := range repos {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, "https://"+Host+"/v2/"+repo+"/manifests/"+id, nil)
		if err != nil {
			return "", false, err
		}
		req.Header.Set("Accept", manifestAccept)
		resp, err := c.http.Do(req)
		if err != nil {
			return "", false, err
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			ref := Host + "/" + repo
			if tag != "" {
				ref += ":" + tag
			}
			if digest != "" {
				ref += "@" + digest
			}
			return ref, true, nil
		case http.StatusNotFound:
			continue
		default:
			return "", false, fmt.Errorf("registry: resolve %s: HEAD %s answered %s", image, repo, resp.Status)
		}
	}
	return "", false, nil
}

// candidates reads an image reference as Kubernetes does (the distribution
// project's reference grammar and Docker Hub normalisation) and returns the
// repositories of the embedded registry it may stand for, its tag and its
// digest. ok is false when the reference names another registry, does not
// parse, or has a digest the embedded registry cannot hold (it stores
// sha256 only).
func candidates(image string) (repos []string, tag, digest string, ok bool) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return nil, "", "", false
	}
	if tagged, isTagged := named.(reference.Tagged); isTagged {
		tag = tagged.Tag()
	}
	if digested, isDigested := named.(reference.Digested); isDigested {
		digest = digested.Digest().String()
		if !isDigest(digest) {
			return nil, "", "", false
		}
	}
	if tag == "" && digest == "" {
		tag = "latest"
	}
	switch domain := reference.Domain(named); {
	case isRegistryHost(domain):
		return []string{reference.Path(named)}, tag, digest, true
	case domain == dockerHubAPIHost:
		// The library normalises only docker.io and index.docker.io; read
		// the path again under docker.io, so "library/" is implied here
		// too.
		if named, err = reference.ParseNormalizedNamed(dockerHub + "/" + reference.Path(named)); err != nil {
			return nil, "", "", false
		}
	case domain != dockerHub:
		return nil, "", "", false
	}
	// A Docker Hub name of one component has two spellings,
	// "library/hello" and "hello"; either may have been pushed. The one
	// written comes first: the user wrote "library/" when it starts the
	// reference or follows its host (a tag or digest has no '/').
	full, familiar := reference.Path(named), reference.FamiliarName(named)
	if full == familiar {
		return []string{full}, tag, digest, true
	}
	if strings.HasPrefix(image, "library/") || strings.Contains(image, "/library/") {
		return []string{full, familiar}, tag, digest, true
	}
	return []string{familiar, full}, tag, digest, true
}
