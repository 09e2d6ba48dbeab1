// Package volumes makes a pod's volumes, as the kubelet's volume manager
// does: each becomes a host directory that the Wasm runtime pre-opens for
// the containers mounting it.
package volumes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiffhq/skiff/internal/node/agent/downward"
	skiffrt "github.com/skiffhq/skiff/runtime"
)

// A pod's volumes live in <pod directory>/volumes/<name>; each becomes a
// pre-opened directory for the containers that mount it. ConfigMap, Secret,
// downward API and projected volumes are written when the pod starts, and
// again whenever the agent refreshes them (SetUpVolume).

// Objects gives the ConfigMaps and Secrets of a pod's namespace. One that
// does not exist is an error wrapping ErrNotFound, which an optional source
// skips.
type Objects interface {
	ConfigMap(ctx context.Context, name string) (*corev1.ConfigMap, error)
	Secret(ctx context.Context, name string) (*corev1.Secret, error)
	// ClaimVolume is the PersistentVolume the claim is bound to; an
	// unbound claim is an error.
	ClaimVolume(ctx context.Context, claim string) (*corev1.PersistentVolume, error)
}

// ErrNotFound: the ConfigMap or Secret a volume names does not exist.
var ErrNotFound = errors.New("not found")

// Sources is what a pod's volume content is made of, besides the pod.
type Sources struct {
	// Objects are the pod namespace's ConfigMaps and Secrets.
	Objects Objects
	// Allocatable is the node's: a downward API file naming a resource
	// limit the container does not set gets the node's allocatable.
	Allocatable corev1.ResourceList
	// Tokens gives the pod's ServiceAccount tokens (serviceAccountToken
	// projections). Nil: such a projection fails to mount.
	Tokens Tokens
}

// Tokens gives ServiceAccount tokens bound to a pod, as the kubelet's
// token manager does: the same token again until it nears the end of its
// life, then a new one, so a refresh of the volume rotates it in time.
type Tokens interface {
	PodToken(ctx context.Context, pod *corev1.Pod, audience string, expirationSeconds int64) (string, error)
}

// SetUp materialises every volume of the pod under dir, the pod's
// directory, and returns the host directory of each by name.
func SetUp(ctx context.Context, pod *corev1.Pod, dir string, sources Sources) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		host, err := SetUpVolume(ctx, pod, dir, v, sources)
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", v.Name, err)
		}
		out[v.Name] = host
	}
	return out, nil
}

// SetUpVolume materialises one volume of the pod under dir and returns its
// host directory. Called again for a ConfigMap, Secret, downward API or
// projected volume, it brings the files up to date: keys that left the
// object leave the volume.
func SetUpVolume(ctx context.Context, pod *corev1.Pod, dir string, v corev1.Volume, sources Sources) (string, error) {
	objs := sources.Objects
	if v.HostPath != nil {
		return hostPathVolume(v.HostPath)
	}
	if v.PersistentVolumeClaim != nil {
		return claimVolume(ctx, objs, v.PersistentVolumeClaim.ClaimName)
	}
	path := filepath.Join(dir, "volumes", v.Name)
	if err := os.MkdirAll(path, 0o755); err != nil {
		return "", err
	}
	var files []projectedFile
	var err error
	switch {
	case v.EmptyDir != nil:
		return path, nil
	case v.ConfigMap != nil:
		files, err = configMapFiles(ctx, objs, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, v.ConfigMap.DefaultMode)
	case v.Secret != nil:
		files, err = secretFiles(ctx, objs, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, v.Secret.DefaultMode)
	case v.DownwardAPI != nil:
		files, err = downwardFiles(pod, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode, sources.Allocatable)
	case v.Projected != nil:
		for _, src := range v.Projected.Sources {
			var more []projectedFile
			switch {
			case src.ConfigMap != nil:
				more, err = configMapFiles(ctx, objs, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, v.Projected.DefaultMode)
			case src.Secret != nil:
				more, err = secretFiles(ctx, objs, src.Secret.Name, src.Secret.Items, src.Secret.Optional, v.Projected.DefaultMode)
			case src.DownwardAPI != nil:
				more, err = downwardFiles(pod, src.DownwardAPI.Items, v.Projected.DefaultMode, sources.Allocatable)
			case src.ServiceAccountToken != nil:
				more, err = tokenFiles(ctx, sources.Tokens, pod, src.ServiceAccountToken, v.Projected.DefaultMode)
			default:
				err = errors.New("only configMap, secret, downwardAPI and serviceAccountToken projections are supported")
			}
			if err != nil {
				break
			}
			files = append(files, more...)
		}
	default:
		return "", errors.New("volume type not supported by the Wasm runtime")
	}
	if err != nil {
		return "", err
	}
	keep := map[string]bool{}
	for _, f := range files {
		if err := writeProjected(path, f); err != nil {
			return "", err
		}
		keep[filepath.Clean(f.path)] = true
	}
	// On a refresh, keys that left the ConfigMap or Secret leave the volume.
	if err := removeStale(path, keep); err != nil {
		return "", err
	}
	return path, nil
}

// removeStale removes the regular files under dir that are not in keep
// (paths relative to dir). The directory is the agent's own: guests see it
// read-only.
func removeStale(dir string, keep map[string]bool) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if !keep[rel] {
			return os.Remove(p)
		}
		return nil
	})
}

func hostPathVolume(hp *corev1.HostPathVolumeSource) (string, error) {
	typ := corev1.HostPathUnset
	if hp.Type != nil {
		typ = *hp.Type
	}
	st, err := os.Stat(hp.Path)
	switch {
	case err == nil && st.IsDir():
		return hp.Path, nil
	case err == nil:
		return "", fmt.Errorf("hostPath %s is not a directory: the Wasm runtime pre-opens directories only", hp.Path)
	case os.IsNotExist(err) && typ == corev1.HostPathDirectoryOrCreate:
		if err := os.MkdirAll(hp.Path, 0o755); err != nil {
			return "", err
		}
		return hp.Path, nil
	}
	return "", fmt.Errorf("hostPath %s: %w", hp.Path, err)
}

type projectedFile struct {
	path string
	data []byte
	mode os.FileMode
}

func keyFiles(data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32, kind, name string) ([]projectedFile, error) {
	mode := os.FileMode(0o644)
	if defaultMode != nil {
		mode = os.FileMode(*defaultMode)
	}
	var out []projectedFile
	if len(items) == 0 {
		for k, v := range data {
			out = append(out, projectedFile{path: k, data: v, mode: mode})
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return nil, fmt.Errorf("configured to use key %s of %s %q, which does not exist", it.Key, kind, name)
		}
		m := mode
		if it.Mode != nil {
			m = os.FileMode(*it.Mode)
		}
		out = append(out, projectedFile{path: it.Path, data: v, mode: m})
	}
	return out, nil
}

func configMapFiles(ctx context.Context, objs Objects, name string, items []corev1.KeyToPath, optional *bool, mode *int32) ([]projectedFile, error) {
	cm, err := objs.ConfigMap(ctx, name)
	if err != nil {
		if errors.Is(err, ErrNotFound) && optional != nil && *optional {
			return nil, nil
		}
		return nil, err
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles(data, items, mode, "ConfigMap", name)
}

func secretFiles(ctx context.Context, objs Objects, name string, items []corev1.KeyToPath, optional *bool, mode *int32) ([]projectedFile, error) {
	sec, err := objs.Secret(ctx, name)
	if err != nil {
		if errors.Is(err, ErrNotFound) && optional != nil && *optional {
			return nil, nil
		}
		return nil, err
	}
	return keyFiles(sec.Data, items, mode, "Secret", name)
}

// tokenFiles is a serviceAccountToken projection: the token at its path.
func tokenFiles(ctx context.Context, tokens Tokens, pod *corev1.Pod, p *corev1.ServiceAccountTokenProjection, defaultMode *int32) ([]projectedFile, error) {
	if tokens == nil {
		return nil, errors.New("serviceAccountToken projection: this node has no token source")
	}
	mode := os.FileMode(0o644)
	if defaultMode != nil {
		mode = os.FileMode(*defaultMode)
	}
	exp := int64(3600)
	if p.ExpirationSeconds != nil {
		exp = *p.ExpirationSeconds
	}
	tok, err := tokens.PodToken(ctx, pod, p.Audience, exp)
	if err != nil {
		return nil, fmt.Errorf("service account token: %w", err)
	}
	return []projectedFile{{path: p.Path, data: []byte(tok), mode: mode}}, nil
}

func downwardFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, defaultMode *int32, allocatable corev1.ResourceList) ([]projectedFile, error) {
	mode := os.FileMode(0o644)
	if defaultMode != nil {
		mode = os.FileMode(*defaultMode)
	}
	var out []projectedFile
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = downward.PodField(pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			c := findContainer(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				err = fmt.Errorf("container %q not found", it.ResourceFieldRef.ContainerName)
			} else {
				v, err = downward.ResourceField(c, it.ResourceFieldRef, allocatable)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("downward API file %s: %w", it.Path, err)
		}
		m := mode
		if it.Mode != nil {
			m = os.FileMode(*it.Mode)
		}
		out = append(out, projectedFile{path: it.Path, data: []byte(v), mode: m})
	}
	return out, nil
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

// writeProjected writes one file under dir. Paths are relative and free of
// "..", which validation enforces; this checks again, because a file
// written outside the volume would be a host write on the pod's behalf.
func writeProjected(dir string, f projectedFile) error {
	clean := filepath.Clean(f.path)
	if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return fmt.Errorf("file path %q leaves the volume", f.path)
	}
	p := filepath.Join(dir, clean)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, f.data) {
		return os.Chmod(p, f.mode.Perm())
	}
	// Written aside and renamed over, so a guest reading the file during a
	// refresh sees the old content or the new, never half of each.
	tmp, err := os.CreateTemp(filepath.Dir(p), ".skiff-")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(f.data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), f.mode.Perm())); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// Mounts turns a container's volumeMounts into the runtime's mounts; vols
// are SetUp's host directories. Volumes whose content the kubelet writes
// (ConfigMap, Secret, downward API, projected) are always read-only, as in
// Kubernetes.
func Mounts(pod *corev1.Pod, c *corev1.Container, vols map[string]string) ([]skiffrt.Mount, error) {
	return MountsWithQuotas(pod, c, vols, nil)
}

// MountsWithQuotas is Mounts with each writable mount of a volume in
// quotas bounded by its quota (Storage.Track's, for emptyDirs), subPath
// mounts included: the quota is the whole volume's.
func MountsWithQuotas(pod *corev1.Pod, c *corev1.Container, vols map[string]string, quotas map[string]skiffrt.DiskQuota) ([]skiffrt.Mount, error) {
	kinds := map[string]*corev1.Volume{}
	for i := range pod.Spec.Volumes {
		kinds[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	var out []skiffrt.Mount
	for _, m := range c.VolumeMounts {
		host, ok := vols[m.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMount %q: no such volume", m.Name)
		}
		if m.SubPath != "" {
			sub, err := subPathDir(host, m.SubPath)
			if err != nil {
				return nil, fmt.Errorf("volumeMount %q: %w", m.Name, err)
			}
			host = sub
		}
		v := kinds[m.Name]
		ro := m.ReadOnly || NodeWritten(v) || (v != nil && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ReadOnly)
		mount := skiffrt.Mount{HostPath: host, GuestPath: m.MountPath, ReadOnly: ro, NodeFiles: injectedTokenVolume(v, m)}
		if !ro {
			mount.Quota = quotas[m.Name]
		}
		out = append(out, mount)
	}
	return out, nil
}

// The ServiceAccount admission plugin's token volume, as it names and
// mounts it (internal/apiserver/serviceaccount_admission.go).
const (
	tokenVolumePrefix = "kube-api-access-"
	tokenMountPath    = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// injectedTokenVolume tells the token volume the API server added to the
// pod (not one the pod asked for): like the node's /etc files it is
// pre-opened after the container's listeners (Mount.NodeFiles), so a
// module finds its listeners where it found them before every pod got
// this volume (fd 3 when the pod has no volumes of its own).
func injectedTokenVolume(v *corev1.Volume, m corev1.VolumeMount) bool {
	if v == nil || v.Projected == nil || !strings.HasPrefix(v.Name, tokenVolumePrefix) || m.MountPath != tokenMountPath || m.SubPath != "" {
		return false
	}
	for _, src := range v.Projected.Sources {
		if src.ServiceAccountToken != nil {
			return true
		}
	}
	return false
}

// NodeWritten reports whether the node writes v's content (ConfigMap,
// Secret, downward API and projected volumes): read-only to the pod, and
// refreshed while it runs.
func NodeWritten(v *corev1.Volume) bool {
	return v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil
}

// subPathDir returns the directory subPath names inside the volume root,
// creating what is missing, one component at a time and refusing every
// symbolic link on the way: the volume's content may come from the pod
// (an emptyDir it wrote a link into), and a link followed here would mount,
// or make, a host directory outside the volume.
func subPathDir(root, subPath string) (string, error) {
	sub := filepath.Clean(subPath)
	if filepath.IsAbs(sub) || sub == ".." || strings.HasPrefix(sub, "../") {
		return "", fmt.Errorf("subPath %q leaves the volume", subPath)
	}
	cur := root
	for _, part := range strings.Split(sub, string(filepath.Separator)) {
		if part == "." || part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		st, err := os.Lstat(cur)
		switch {
		case os.IsNotExist(err):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return "", fmt.Errorf("subPath %q: %w", subPath, err)
			}
		case err != nil:
			return "", fmt.Errorf("subPath %q: %w", subPath, err)
		case st.Mode()&os.ModeSymlink != 0:
			return "", fmt.Errorf("subPath %q: %s is a symbolic link, which a subPath may not go through", subPath, part)
		case !st.IsDir():
			return "", fmt.Errorf("subPath %q: %s is not a directory: the Wasm runtime pre-opens directories only", subPath, part)
		}
	}
	return cur, nil
}

// claimVolume is the host directory of the volume bound to the claim: a
// local (or hostPath) PersistentVolume on this node, its directory made if
// missing. The volume outlives the pod: nothing here removes it.
func claimVolume(ctx context.Context, objs Objects, claim string) (string, error) {
	pv, err := objs.ClaimVolume(ctx, claim)
	if err != nil {
		return "", err
	}
	var path string
	switch {
	case pv.Spec.Local != nil:
		path = pv.Spec.Local.Path
	case pv.Spec.HostPath != nil:
		path = pv.Spec.HostPath.Path
	default:
		return "", fmt.Errorf("persistentvolume %s: only local and hostPath volumes are supported", pv.Name)
	}
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("persistentvolume %s: path %q is not absolute", pv.Name, path)
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return "", fmt.Errorf("persistentvolume %s: %w", pv.Name, err)
	}
	return path, nil
}
