package volumes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

func emptyDir(name, limit string) corev1.Volume {
	v := corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	if limit != "" {
		q := resource.MustParse(limit)
		v.EmptyDir.SizeLimit = &q
	}
	return v
}

func TestStorageVolumeSizeLimit(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{emptyDir("scratch", "1Mi")}}}
	var events []string
	s := NewStorage(pod, func(msg string) { events = append(events, msg) })
	dir := t.TempDir()
	// What the directory holds already counts (an engine restart).
	if err := os.WriteFile(filepath.Join(dir, "old"), make([]byte, 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	q, err := s.Track(pod.Spec.Volumes[0], dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Used(), int64(1000+skiffrt.EntryBytes); got != want {
		t.Fatalf("scan counted %d, want %d", got, want)
	}
	if again, _ := s.Track(pod.Spec.Volumes[0], dir); again != q {
		t.Fatal("a second Track made a second quota")
	}
	left := int64(1<<20) - 1000 - skiffrt.EntryBytes
	if got := q.Reserve(1 << 20); got != left {
		t.Fatalf("Reserve granted %d, want what is left: %d", got, left)
	}
	if got := q.Reserve(1); got != 0 {
		t.Fatalf("a full volume granted %d", got)
	}
	want := `Usage of EmptyDir volume "scratch" exceeds the limit "1Mi".`
	if len(events) != 1 || !strings.HasPrefix(events[0], want) {
		t.Fatalf("events %q, want one starting %q", events, want)
	}
	q.Release(4096)
	if got := q.Reserve(8192); got != 4096 {
		t.Fatalf("after a release of 4096, Reserve granted %d", got)
	}
	if len(events) != 1 {
		t.Errorf("a second refusal within a minute raised another event: %q", events)
	}
	s.now = func() time.Time { return time.Now().Add(2 * eventInterval) }
	q.Reserve(1)
	if len(events) != 2 {
		t.Errorf("a refusal a minute later raised no event: %q", events)
	}
}

func TestStoragePodEphemeralLimitCoversVolumesAndLogs(t *testing.T) {
	limit := func(q string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse(q)}}
	}
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "a", Resources: limit("1Mi")}, {Name: "b", Resources: limit("1Mi")}, {Name: "c"}},
		Volumes:    []corev1.Volume{emptyDir("x", ""), emptyDir("y", "10Mi")},
	}}
	if q, ok := PodEphemeralLimit(pod); !ok || q.String() != "2Mi" {
		t.Fatalf("pod limit %v %v, want 2Mi", q, ok)
	}
	var events []string
	s := NewStorage(pod, func(msg string) { events = append(events, msg) })
	x, _ := s.Track(pod.Spec.Volumes[0], t.TempDir())
	y, _ := s.Track(pod.Spec.Volumes[1], t.TempDir())
	s.LogsChanged(512 << 10)
	if got := x.Reserve(1 << 20); got != 1<<20 {
		t.Fatalf("x granted %d", got)
	}
	if got := y.Reserve(1 << 20); got != 512<<10 {
		t.Fatalf("y granted %d, want what x and the logs leave of 2Mi: %d", got, 512<<10)
	}
	if len(events) != 1 || !strings.HasPrefix(events[0], "Pod ephemeral local storage usage exceeds the total limit of containers 2Mi.") {
		t.Fatalf("events %q", events)
	}
	s.LogsChanged(-512 << 10) // a rotated log deleted
	if got := x.Reserve(1 << 20); got != 512<<10 {
		t.Fatalf("after logs shrank x granted %d", got)
	}
}
