package engine

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/internal/wasmbuild"
)

// TestWasmPodEmptyDirSizeLimit runs a guest that writes 1 MiB chunks into a
// 20Mi emptyDir, up to a bounded 64 MiB: the writes past 20Mi fail with
// ENOSPC (the guest says where it stopped and exits), the volume holds no
// more than its limit, and the pod has the event. The kubelet would evict
// such a pod once it noticed; a module writing that fast once filled a
// 75 GB disk before anything noticed, so skiff refuses the writes instead.
func TestWasmPodEmptyDirSizeLimit(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"filler:1": wasmbuild.Build(t, "../runtime/wasm/testdata/filler", false)})
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "disk-1", CrashLoopBackOff: 200 * time.Millisecond})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	limit := resource.MustParse("20Mi")
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "filler"}, Spec: corev1.PodSpec{
		NodeName: "disk-1", RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{Name: "main", Image: host + "/filler:1",
			Args:         []string{"/scratch", "64"}, // the guest never writes more than 64 MiB, whatever it is asked
			VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}}},
		Volumes: []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &limit}}}},
	}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, cs, "default", "filler", 90*time.Second, "finishes", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	logs, err := cs.CoreV1().Pods("default").GetLogs("filler", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	m := regexp.MustCompile(`stopped at (\d+) bytes: .*\(ENOSPC\)`).FindSubmatch(logs)
	if m == nil {
		t.Fatalf("the guest was not stopped by ENOSPC; its log:\n%s", logs)
	}
	if n, _ := strconv.ParseInt(string(m[1]), 10, 64); n > limit.Value() || n < limit.Value()-(1<<20) {
		t.Errorf("the guest stopped at %d bytes; want at the limit, %d, within one chunk", n, limit.Value())
	}

	// What the volume's directory holds on disk.
	dir := filepath.Join(e.Config().DataDir, agentSubdir, "pods", string(p.UID), "volumes", "scratch")
	var held int64
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			held += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if held > limit.Value()+1<<20 {
		t.Errorf("the emptyDir holds %d bytes, over its 20Mi limit (+ one chunk)", held)
	}

	want := `Usage of EmptyDir volume "scratch" exceeds the limit "20Mi".`
	err = testutil.Poll(30*time.Second, func() error {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=filler"})
		if err != nil {
			return err
		}
		var seen []string
		for _, ev := range evs.Items {
			if ev.Type == corev1.EventTypeWarning && strings.HasPrefix(ev.Message, want) {
				return nil
			}
			seen = append(seen, ev.Reason+": "+ev.Message)
		}
		return fmt.Errorf("no Warning event %q among %q", want, seen)
	})
	if err != nil {
		t.Error(err)
	}
}
