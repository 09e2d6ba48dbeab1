package volumes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func int32Ptr(v int32) *int32 { return &v }

func boolPtr(b bool) *bool { return &b }

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// fakeObjects is what the agent fetches from the control plane for one
// namespace; anything else is not found, as the agent reports it.
type fakeObjects struct {
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	volumes    map[string]*corev1.PersistentVolume // by claim
}

func (o fakeObjects) ClaimVolume(_ context.Context, claim string) (*corev1.PersistentVolume, error) {
	if pv, ok := o.volumes[claim]; ok {
		return pv, nil
	}
	return nil, fmt.Errorf("%s %q %w", "PersistentVolumeClaim", claim, ErrNotFound)
}

func (o fakeObjects) ConfigMap(_ context.Context, name string) (*corev1.ConfigMap, error) {
	if cm, ok := o.configMaps[name]; ok {
		return cm, nil
	}
	return nil, fmt.Errorf("%s %q %w", "ConfigMap", name, ErrNotFound)
}

func (o fakeObjects) Secret(_ context.Context, name string) (*corev1.Secret, error) {
	if s, ok := o.secrets[name]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("%s %q %w", "Secret", name, ErrNotFound)
}

func TestKeyFiles(t *testing.T) {
	data := map[string][]byte{"a": []byte("A"), "b": []byte("B"), "c": []byte("C")}
	type file struct {
		path, data string
		mode       os.FileMode
	}
	tests := []struct {
		name        string
		items       []corev1.KeyToPath
		defaultMode *int32
		want        []file
	}{
		{name: "every key, default 0644", want: []file{{"a", "A", 0o644}, {"b", "B", 0o644}, {"c", "C", 0o644}}},
		{name: "every key, defaultMode", defaultMode: int32Ptr(0o400),
			want: []file{{"a", "A", 0o400}, {"b", "B", 0o400}, {"c", "C", 0o400}}},
		{name: "items select and rename, item mode wins", defaultMode: int32Ptr(0o440),
			items: []corev1.KeyToPath{{Key: "b", Path: "conf/b.txt"}, {Key: "a", Path: "x", Mode: int32Ptr(0o600)}},
			want:  []file{{"conf/b.txt", "B", 0o440}, {"x", "A", 0o600}}},
		{name: "one key twice", items: []corev1.KeyToPath{{Key: "c", Path: "one"}, {Key: "c", Path: "two"}},
			want: []file{{"one", "C", 0o644}, {"two", "C", 0o644}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := keyFiles(data, tt.items, tt.defaultMode, "ConfigMap", "cfg")
			if err != nil {
				t.Fatal(err)
			}
			var got []file
			for _, f := range files {
				got = append(got, file{f.path, string(f.data), f.mode})
			}
			slices.SortFunc(got, func(x, y file) int { return strings.Compare(x.path, y.path) })
			if !slices.Equal(got, tt.want) {
				t.Errorf("files %v, want %v", got, tt.want)
			}
		})
	}
	_, err := keyFiles(data, []corev1.KeyToPath{{Key: "a", Path: "a"}, {Key: "zzz", Path: "z"}}, nil, "Secret", "creds")
	if err == nil || !strings.Contains(err.Error(), "zzz") || !strings.Contains(err.Error(), `Secret "creds"`) {
		t.Errorf("missing item key: error %v, want one naming the key and the object", err)
	}
}

func TestWriteProjected(t *testing.T) {
	root := t.TempDir()
	vol := filepath.Join(root, "vol")
	if err := os.Mkdir(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	ok := []struct {
		path, at string
		mode     os.FileMode
	}{
		{"plain", "plain", 0o644},
		{"deep/er/file", "deep/er/file", 0o400},
		{"a/../b", "b", 0o600},
		{"./c", "c", 0o640},
	}
	for _, tt := range ok {
		if err := writeProjected(vol, projectedFile{path: tt.path, data: []byte("data:" + tt.path), mode: tt.mode}); err != nil {
			t.Errorf("writeProjected(%q): %v", tt.path, err)
			continue
		}
		p := filepath.Join(vol, tt.at)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != "data:"+tt.path {
			t.Errorf("%s holds %q, %v", p, b, err)
		}
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != tt.mode {
			t.Errorf("%s mode %v, want %v (%v)", p, st.Mode().Perm(), tt.mode, err)
		}
	}
	for _, path := range []string{"../x", "..", "/abs", "/etc/passwd", "a/../../x", "ok/../../../x"} {
		err := writeProjected(vol, projectedFile{path: path, data: []byte("escaped"), mode: 0o644})
		if err == nil || !strings.Contains(err.Error(), "leaves the volume") {
			t.Errorf("writeProjected(%q) = %v, want a refusal", path, err)
		}
	}
	if fileExists(filepath.Join(root, "x")) {
		t.Error("a file was written outside the volume")
	}
}

// mountTestPod has one volume of each kind Mounts tells apart.
func mountTestPod(mounts ...corev1.VolumeMount) *corev1.Pod {
	return &corev1.Pod{Spec: corev1.PodSpec{
		Volumes: []corev1.Volume{
			{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp"}}},
			{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
			{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{}}},
			{Name: "dapi", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{}}},
			{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}},
		},
		Containers: []corev1.Container{{Name: "app", VolumeMounts: mounts}},
	}}
}

func mountTestVolumes(t *testing.T) map[string]string {
	root := t.TempDir()
	vols := map[string]string{}
	for _, name := range []string{"data", "host", "cfg", "sec", "dapi", "proj"} {
		vols[name] = filepath.Join(root, name)
		if err := os.Mkdir(vols[name], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return vols
}

func TestContainerMountsReadOnly(t *testing.T) {
	vols := mountTestVolumes(t)
	tests := []struct {
		volume   string
		readOnly bool
		want     bool
	}{
		{"data", false, false},
		{"data", true, true},
		{"host", false, false},
		{"host", true, true},
		// Content the node writes is read-only whatever the mount says.
		{"cfg", false, true},
		{"sec", false, true},
		{"dapi", false, true},
		{"proj", false, true},
		{"cfg", true, true},
	}
	for _, tt := range tests {
		pod := mountTestPod(corev1.VolumeMount{Name: tt.volume, MountPath: "/mnt/" + tt.volume, ReadOnly: tt.readOnly})
		mounts, err := Mounts(pod, &pod.Spec.Containers[0], vols)
		if err != nil {
			t.Fatalf("%s: %v", tt.volume, err)
		}
		if len(mounts) != 1 || mounts[0].HostPath != vols[tt.volume] || mounts[0].GuestPath != "/mnt/"+tt.volume || mounts[0].ReadOnly != tt.want {
			t.Errorf("%s readOnly=%v: mounts %+v, want read-only %v at %s", tt.volume, tt.readOnly, mounts, tt.want, vols[tt.volume])
		}
	}
}

func TestContainerMountsSubPath(t *testing.T) {
	vols := mountTestVolumes(t)
	pod := mountTestPod(
		corev1.VolumeMount{Name: "data", MountPath: "/a", SubPath: "site/html"},
		corev1.VolumeMount{Name: "data", MountPath: "/b", SubPath: "x/../y"},
		corev1.VolumeMount{Name: "data", MountPath: "/c"},
	)
	mounts, err := Mounts(pod, &pod.Spec.Containers[0], vols)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(vols["data"], "site/html"), filepath.Join(vols["data"], "y"), vols["data"]}
	for i, m := range mounts {
		if m.HostPath != want[i] {
			t.Errorf("mount %d: host path %s, want %s", i, m.HostPath, want[i])
		}
		if st, err := os.Stat(m.HostPath); err != nil || !st.IsDir() {
			t.Errorf("mount %d: subPath directory not created: %v", i, err)
		}
	}

	for _, sub := range []string{"../x", "..", "/etc", "a/../../x"} {
		pod := mountTestPod(corev1.VolumeMount{Name: "data", MountPath: "/m", SubPath: sub})
		_, err := Mounts(pod, &pod.Spec.Containers[0], vols)
		if err == nil || !strings.Contains(err.Error(), "leaves the volume") {
			t.Errorf("subPath %q: error %v, want a refusal", sub, err)
		}
	}
	if fileExists(filepath.Join(filepath.Dir(vols["data"]), "x")) {
		t.Error("a refused subPath created a directory outside the volume")
	}

	pod = mountTestPod(corev1.VolumeMount{Name: "nope", MountPath: "/m"})
	if _, err := Mounts(pod, &pod.Spec.Containers[0], vols); err == nil {
		t.Error("a mount of an unknown volume succeeded")
	}
}

func TestContainerMountsSubPathSymlinkEscape(t *testing.T) {
	// A container can make a relative symlink in its writable emptyDir
	// (wazero's path_symlink refuses absolute targets only). The kubelet
	// refuses a subPath that resolves outside the volume.
	vols := mountTestVolumes(t)
	outside := filepath.Join(filepath.Dir(vols["data"]), "host-secrets")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../host-secrets", filepath.Join(vols["data"], "esc")); err != nil {
		t.Fatal(err)
	}
	volReal, err := filepath.EvalSymlinks(vols["data"])
	if err != nil {
		t.Fatal(err)
	}
	var escaped []string
	for _, sub := range []string{"esc", "esc/made-by-agent"} {
		pod := mountTestPod(corev1.VolumeMount{Name: "data", MountPath: "/m", SubPath: sub})
		mounts, err := Mounts(pod, &pod.Spec.Containers[0], vols)
		if err != nil {
			continue // refused: right
		}
		resolved, err := filepath.EvalSymlinks(mounts[0].HostPath)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(resolved, volReal+string(filepath.Separator)) {
			escaped = append(escaped, sub+" → "+resolved)
		}
	}
	if fileExists(filepath.Join(outside, "made-by-agent")) {
		escaped = append(escaped, "and the agent created host-secrets/made-by-agent")
	}
	if len(escaped) > 0 {
		t.Errorf("Mounts: subPath check is lexical, a symlink in the volume escapes it: %s", strings.Join(escaped, "; "))
	}
}

func TestHostPathVolume(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	typ := func(v corev1.HostPathType) *corev1.HostPathType { return &v }

	if p, err := hostPathVolume(&corev1.HostPathVolumeSource{Path: root}); err != nil || p != root {
		t.Errorf("existing directory: %q, %v", p, err)
	}
	if p, err := hostPathVolume(&corev1.HostPathVolumeSource{Path: root, Type: typ(corev1.HostPathDirectory)}); err != nil || p != root {
		t.Errorf("existing directory, type Directory: %q, %v", p, err)
	}
	created := filepath.Join(root, "new/deeper")
	if p, err := hostPathVolume(&corev1.HostPathVolumeSource{Path: created, Type: typ(corev1.HostPathDirectoryOrCreate)}); err != nil || p != created {
		t.Errorf("DirectoryOrCreate: %q, %v", p, err)
	}
	if st, err := os.Stat(created); err != nil || !st.IsDir() {
		t.Errorf("DirectoryOrCreate did not create %s: %v", created, err)
	}
	for name, src := range map[string]*corev1.HostPathVolumeSource{
		"missing, type Directory": {Path: filepath.Join(root, "absent"), Type: typ(corev1.HostPathDirectory)},
		"missing, no type":        {Path: filepath.Join(root, "absent")},
		"a file":                  {Path: file},
		"a file, type File":       {Path: file, Type: typ(corev1.HostPathFile)},
	} {
		if p, err := hostPathVolume(src); err == nil {
			t.Errorf("%s: %q, want an error", name, p)
		}
	}
	if fileExists(filepath.Join(root, "absent")) {
		t.Error("a hostPath without DirectoryOrCreate was created")
	}
}

func TestSetUpVolumes(t *testing.T) {
	const ns = "team"
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: ns},
		Data:       map[string]string{"app.conf": "port=80", "other": "o"},
		BinaryData: map[string][]byte{"blob": {0, 1, 2}}}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns},
		Data: map[string][]byte{"token": []byte("t0k")}}
	sources := Sources{Objects: fakeObjects{
		configMaps: map[string]*corev1.ConfigMap{"cfg": cm},
		secrets:    map[string]*corev1.Secret{"creds": sec},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: ns, UID: "uid-123",
		Labels: map[string]string{"app": "web", "tier": "front"}}}
	pod.Spec.Containers = []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}}}
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, DefaultMode: int32Ptr(0o444)}}},
		{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "creds", Items: []corev1.KeyToPath{{Key: "token", Path: "api/token", Mode: int32Ptr(0o400)}}}}},
		{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "mem", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
		}}}},
		{Name: "all", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"},
				Items: []corev1.KeyToPath{{Key: "app.conf", Path: "app.conf"}}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: boolPtr(true)}},
		}}}},
		{Name: "maybe", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: boolPtr(true)}}},
	}
	dir := t.TempDir()
	vols, err := SetUp(ctx, pod, dir, sources)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range pod.Spec.Volumes {
		if want := filepath.Join(dir, "volumes", v.Name); vols[v.Name] != want {
			t.Errorf("volume %s at %q, want %q", v.Name, vols[v.Name], want)
		}
	}
	files := map[string]struct {
		data string
		mode os.FileMode
	}{
		"config/app.conf":  {"port=80", 0o444},
		"config/other":     {"o", 0o444},
		"config/blob":      {"\x00\x01\x02", 0o444},
		"secret/api/token": {"t0k", 0o400},
		"podinfo/labels":   {"app=\"web\"\ntier=\"front\"", 0o644},
		"podinfo/mem":      {"64", 0o644},
		"all/app.conf":     {"port=80", 0o644},
		"all/token":        {"t0k", 0o644},
		"all/name":         {"web-0", 0o644},
	}
	for rel, want := range files {
		p := filepath.Join(dir, "volumes", rel)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != want.data {
			t.Errorf("%s holds %q, %v; want %q", rel, b, err, want.data)
			continue
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != want.mode {
			t.Errorf("%s mode %v, want %v", rel, st.Mode().Perm(), want.mode)
		}
	}
	for _, v := range []string{"scratch", "maybe"} {
		if entries, err := os.ReadDir(vols[v]); err != nil || len(entries) != 0 {
			t.Errorf("volume %s: %v, %v; want an empty directory", v, entries, err)
		}
	}

	for name, src := range map[string]corev1.VolumeSource{
		"required missing ConfigMap": {ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}}},
		"required missing Secret":    {Secret: &corev1.SecretVolumeSource{SecretName: "absent"}},
		"missing item key":           {ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "nope", Path: "x"}}}},
		"item path leaving":          {ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "other", Path: "../../x"}}}},
		"persistentVolumeClaim":      {PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}},
		"unsupported kind":           {NFS: &corev1.NFSVolumeSource{Server: "s", Path: "/"}},
	} {
		p := pod.DeepCopy()
		p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: src}}
		if _, err := SetUp(ctx, p, t.TempDir(), sources); err == nil || !strings.Contains(err.Error(), `volume "v"`) {
			t.Errorf("%s: error %v, want one naming the volume", name, err)
		}
	}
}

// TestClaimVolume: a persistentVolumeClaim volume is its bound local
// volume's directory, made if missing and kept apart from the pod's
// directory; an unbound or missing claim is an error; a read-only claim
// mounts read-only.
func TestClaimVolume(t *testing.T) {
	podDir, local := t.TempDir(), filepath.Join(t.TempDir(), "local-volumes", "pvc-1")
	objs := fakeObjects{volumes: map[string]*corev1.PersistentVolume{"data-db-0": {
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-1"},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
			Local: &corev1.LocalVolumeSource{Path: local}}}}}}
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-db-0", ReadOnly: true}}}},
		Containers: []corev1.Container{{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}}}}
	got, err := SetUp(context.Background(), pod, podDir, Sources{Objects: objs})
	if err != nil {
		t.Fatal(err)
	}
	if got["data"] != local || !fileExists(local) {
		t.Fatalf("volume dir = %q (exists %v), want %q", got["data"], fileExists(local), local)
	}
	mounts, err := MountsWithQuotas(pod, &pod.Spec.Containers[0], got, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 1 || mounts[0].HostPath != local || !mounts[0].ReadOnly {
		t.Errorf("mounts = %+v", mounts)
	}
	pod.Spec.Volumes[0].PersistentVolumeClaim.ClaimName = "missing"
	if _, err := SetUp(context.Background(), pod, podDir, Sources{Objects: objs}); err == nil {
		t.Error("a missing claim mounted")
	}
}

// The token volume the API server adds is pre-opened after the listeners
// (NodeFiles), as the node's /etc is; the same projection mounted by the
// pod itself, or elsewhere, is one of its own volumes.
func TestInjectedTokenVolumeAfterListeners(t *testing.T) {
	token := corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
		{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}
	const path = "/var/run/secrets/kubernetes.io/serviceaccount"
	for _, tc := range []struct {
		volume, mountPath string
		want              bool
	}{
		{"kube-api-access-x2b4z", path, true},
		{"kube-api-access-x2b4z", "/elsewhere", false},
		{"my-token", path, false},
	} {
		pod := &corev1.Pod{Spec: corev1.PodSpec{
			Volumes:    []corev1.Volume{{Name: tc.volume, VolumeSource: token}},
			Containers: []corev1.Container{{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: tc.volume, MountPath: tc.mountPath, ReadOnly: true}}}}}}
		mounts, err := Mounts(pod, &pod.Spec.Containers[0], map[string]string{tc.volume: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if len(mounts) != 1 || mounts[0].NodeFiles != tc.want || !mounts[0].ReadOnly {
			t.Errorf("%s at %s: %+v, want NodeFiles %v", tc.volume, tc.mountPath, mounts, tc.want)
		}
	}
}
