package imageregistry

import (
	"context"
	"fmt"
	"net/http"
	"strings"

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

// dockerHosts are the spellings of Docker Hub, the registry a reference
// without a host means.
var dockerHosts = map[string]bool{"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true}

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

// candidates parses an image reference the way Docker does and returns the
// repositories of the embedded registry it may stand for, its tag and its
// digest. ok is false when the reference names another registry or does
// not parse.
func candidates(image string) (repos []string, tag, digest string, ok bool) {
	rest := image
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest, digest = rest[:i], rest[i+1:]
		if !isDigest(digest) {
			return nil, "", "", false
		}
	}
	// The first component is a host when it has a '.' or ':' or is
	// localhost, as in Docker's reference grammar.
	host := ""
	if i := strings.Index(rest, "/"); i >= 0 {
		if first := rest[:i]; strings.ContainsAny(first, ".:") || first == "localhost" {
			host, rest = first, rest[i+1:]
		}
	}
	if i := strings.LastIndex(rest, ":"); i >= 0 {
		rest, tag = rest[:i], rest[i+1:]
		if !tagRe.MatchString(tag) {
			return nil, "", "", false
		}
	}
	if tag == "" && digest == "" {
		tag = "latest"
	}
	if len(rest) > maxNameLength || !nameRe.MatchString(rest) {
		return nil, "", "", false
	}
	switch {
	case isRegistryHost(host):
		return []string{rest}, tag, digest, true
	case host != "" && !dockerHosts[strings.ToLower(host)]:
		return nil, "", "", false
	}
	repos = []string{rest}
	if short, found := strings.CutPrefix(rest, "library/"); found && !strings.Contains(short, "/") {
		repos = append(repos, short)
	} else if !strings.Contains(rest, "/") {
		repos = append(repos, "library/"+rest)
	}
	return repos, tag, digest, true
}
