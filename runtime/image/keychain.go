package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
)

// Keychain turns a pod's imagePullSecrets into credentials for [Store.Pull],
// with the kubelet's semantics (its credentialprovider keyring):
//
//   - Secrets of type kubernetes.io/dockerconfigjson (key .dockerconfigjson,
//     {"auths": {...}}) and legacy kubernetes.io/dockercfg (key .dockercfg)
//     are read; Secrets of other types are ignored, as the kubelet does.
//   - Each entry may give username/password, auth (base64 "user:pass"),
//     identitytoken (an OAuth2 refresh token exchanged at the registry's
//     token service) or registrytoken (a bearer token sent as is).
//   - Keys are registry hosts with optional port, path and "*" globs per
//     host label ("registry.example:5000", "https://registry.example/v1/",
//     "*.example.com/team"); a key matches an image when the host labels
//     glob-match, the ports are equal and the key's path is a prefix of the
//     image's repository path. More specific keys are tried first, and every
//     matching credential is tried in turn by Pull. Credentials for
//     index.docker.io also serve docker.io images.
//
// Resolve, for other users of the authn.Keychain interface, gives the most
// specific match, or anonymous when nothing matches. A Secret whose data
// does not parse is an error naming the Secret (never its content).
func Keychain(secrets []corev1.Secret) (authn.Keychain, error) {
	k := &secretKeychain{creds: map[string][]authn.AuthConfig{}}
	for i := range secrets {
		sec := &secrets[i]
		var (
			raw  []byte
			auth map[string]authn.AuthConfig
		)
		switch sec.Type {
		case corev1.SecretTypeDockerConfigJson:
			raw = secretData(sec, corev1.DockerConfigJsonKey)
			if len(raw) == 0 {
				continue
			}
			var cfg struct {
				Auths map[string]authn.AuthConfig `json:"auths"`
			}
			if err := json.Unmarshal(raw, &cfg); err != nil {
				return nil, fmt.Errorf("image: imagePullSecret %s/%s: %s does not parse: %w", sec.Namespace, sec.Name, corev1.DockerConfigJsonKey, redactJSONError(err))
			}
			auth = cfg.Auths
		case corev1.SecretTypeDockercfg:
			raw = secretData(sec, corev1.DockerConfigKey)
			if len(raw) == 0 {
				continue
			}
			if err := json.Unmarshal(raw, &auth); err != nil {
				return nil, fmt.Errorf("image: imagePullSecret %s/%s: %s does not parse: %w", sec.Namespace, sec.Name, corev1.DockerConfigKey, redactJSONError(err))
			}
		default:
			continue
		}
		// Map order is random; sort so that equal Secrets give equal
		// keychains (and the same single-flight identity).
		locs := make([]string, 0, len(auth))
		for loc := range auth {
			locs = append(locs, loc)
		}
		slices.Sort(locs)
		for _, loc := range locs {
			key, err := keyringKey(loc)
			if err != nil {
				return nil, fmt.Errorf("image: imagePullSecret %s/%s: registry key %q: %w", sec.Namespace, sec.Name, loc, err)
			}
			k.creds[key] = append(k.creds[key], auth[loc])
		}
	}
	for key := range k.creds {
		k.index = append(k.index, key)
	}
	// Reverse order puts longer (more specific) keys sharing a prefix
	// first: "quay.io/team" before "quay.io", as the kubelet orders them.
	slices.Sort(k.index)
	slices.Reverse(k.index)

	sum := sha256.New()
	b, err := json.Marshal(struct {
		Index []string
		Creds map[string][]authn.AuthConfig
	}{k.index, k.creds})
	if err != nil {
		return nil, fmt.Errorf("image: keychain: %w", err)
	}
	sum.Write(b)
	k.id = "secrets:" + hex.EncodeToString(sum.Sum(nil))
	return k, nil
}

// secretData reads key from a Secret's data, or from stringData for
// Secrets built in code and never round-tripped through an API server.
func secretData(sec *corev1.Secret, key string) []byte {
	if b, ok := sec.Data[key]; ok {
		return b
	}
	if s, ok := sec.StringData[key]; ok {
		return []byte(s)
	}
	return nil
}

// redactJSONError keeps a JSON error's kind but not the bytes it quotes,
// which could be part of a password.
func redactJSONError(err error) error {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Errorf("syntax error at byte %d", e.Offset)
	case *json.UnmarshalTypeError:
		return fmt.Errorf("field %q has the wrong type (%s)", e.Field, e.Value)
	}
	if strings.Contains(err.Error(), "auth field") {
		return fmt.Errorf("an auth field is not base64 of user:password")
	}
	return fmt.Errorf("malformed")
}

// keyringKey normalises a docker config key as the kubelet does: drop the
// scheme, treat /v1/ and /v2/ as the registry root.
func keyringKey(loc string) (string, error) {
	v := loc
	if !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") {
		v = "https://" + v
	}
	u, err := url.Parse(v)
	if err != nil {
		return "", err
	}
	if u.Host == "" {
		return "", fmt.Errorf("no registry host")
	}
	p := u.Path
	if strings.HasPrefix(p, "/v2/") || strings.HasPrefix(p, "/v1/") {
		p = p[3:]
	}
	if p != "" && p != "/" {
		return u.Host + p, nil
	}
	return u.Host, nil
}

// secretKeychain is the authn.Keychain built by Keychain.
type secretKeychain struct {
	index []string // keys, most specific first
	creds map[string][]authn.AuthConfig
	id    string // fingerprint of the credentials, for single-flight keys
}

// Resolve implements authn.Keychain with the most specific credential.
func (k *secretKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	if c := k.lookupString(target.String(), target.RegistryStr()); len(c) > 0 {
		return authn.FromConfig(c[0]), nil
	}
	return authn.Anonymous, nil
}

// lookup lists the credentials for repo, most specific first.
func (k *secretKeychain) lookup(repo name.Repository) []authn.AuthConfig {
	return k.lookupString(repo.String(), repo.RegistryStr())
}

func (k *secretKeychain) lookupString(target, registry string) []authn.AuthConfig {
	// go-containerregistry spells Docker Hub index.docker.io; Kubernetes
	// (and docker config files) say docker.io.
	isDefault := registry == name.DefaultRegistry || registry == "docker.io"
	if registry == name.DefaultRegistry {
		target = "docker.io" + strings.TrimPrefix(target, name.DefaultRegistry)
	}
	t, err := url.Parse("https://" + target)
	if err != nil {
		return nil
	}
	var out []authn.AuthConfig
	for _, key := range k.index {
		g, err := url.Parse("https://" + key)
		if err != nil {
			continue
		}
		if urlsMatch(g, t) {
			out = append(out, k.creds[key]...)
		}
	}
	if len(out) == 0 && isDefault {
		out = append(out, k.creds[name.DefaultRegistry]...)
	}
	return out
}

// urlsMatch is the kubelet's URLsMatch: host labels glob-match one to one,
// ports are equal, and the key's path is a prefix of the target's (a plain
// string prefix, as the kubelet has it).
func urlsMatch(glob, target *url.URL) bool {
	gParts, gPort := splitHost(glob.Host)
	tParts, tPort := splitHost(target.Host)
	if gPort != tPort || len(gParts) != len(tParts) {
		return false
	}
	if !strings.HasPrefix(target.Path, glob.Path) {
		return false
	}
	for i, gp := range gParts {
		if ok, err := filepath.Match(gp, tParts[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

func splitHost(hostport string) ([]string, string) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	return strings.Split(host, "."), port
}

// foreignKeychains numbers keychains that cannot be identified by pointer,
// so their pulls never share a flight with another caller's.
var foreignKeychains atomic.Uint64

// keychainID identifies a caller's credentials for single-flight keys:
// equal credentials share a registry round trip, different ones never do.
func keychainID(kc authn.Keychain) string {
	switch k := kc.(type) {
	case nil:
		return "anonymous"
	case *secretKeychain:
		return k.id
	}
	if v := reflect.ValueOf(kc); v.Kind() == reflect.Pointer {
		return fmt.Sprintf("%T@%x", kc, v.Pointer())
	}
	return fmt.Sprintf("foreign#%d", foreignKeychains.Add(1))
}
