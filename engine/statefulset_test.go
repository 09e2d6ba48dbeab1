package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/skiffhq/skiff/internal/testutil"
)

// TestStatefulSetWithVolumes: a StatefulSet of three Wasm pods with a
// volumeClaimTemplate comes up in order (each pod created once the one
// before is Ready), each with its claim Bound to a local volume the
// provisioner made on the node; a file in a pod's volume survives the
// pod's deletion and is read by the module in its replacement. Scaled down,
// the highest ordinal goes and its claim stays; the claim deleted, its
// volume is deleted (reclaim Delete) and the node removes the directory.
// kubectl rollout status, history and undo work on it. Its own
// ranges: pods 127.107.0.0/22, Services 127.108.0.0/16.
func TestStatefulSetWithVolumes(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"web:1": httpserverModule(t)})
	dataDir := t.TempDir()
	e := startEngine(t, Config{DataDir: dataDir, NodeName: "sts-1", PodCIDR: "127.107.0.0/22",
		ServiceCIDR: "127.108.0.0/16", CrashLoopBackOff: 200 * time.Millisecond, VolumeSyncPeriod: time.Second})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const wait = 120 * time.Second

	n := int32(3)
	c := webContainer("web", host+"/web:1")
	c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	set := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: appsv1.StatefulSetSpec{
		Replicas: &n, ServiceName: "db",
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{c}}},
		VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")}}}}},
	}}
	if _, err := cs.AppsV1().StatefulSets("default").Create(ctx, set, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() error {
		s, err := cs.AppsV1().StatefulSets("default").Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if s.Status.ReadyReplicas != 3 || s.Status.UpdatedReplicas != 3 {
			return fmt.Errorf("status %+v", s.Status)
		}
		return nil
	})

	// In order: each pod was created no sooner than its predecessor became
	// Ready (the API's times are in seconds).
	var prevReady time.Time
	for i := 0; i < 3; i++ {
		p, err := cs.CoreV1().Pods("default").Get(ctx, fmt.Sprintf("db-%d", i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.Hostname != p.Name || p.Spec.Subdomain != "db" {
			t.Errorf("%s: hostname %q subdomain %q", p.Name, p.Spec.Hostname, p.Spec.Subdomain)
		}
		if i > 0 && p.CreationTimestamp.Time.Before(prevReady) {
			t.Errorf("%s created at %s, before db-%d was Ready at %s", p.Name, p.CreationTimestamp, i-1, prevReady)
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady {
				prevReady = cond.LastTransitionTime.Time
			}
		}
	}
	// Every claim Bound to a local volume on the node.
	var hostDir string
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("data-db-%d", i)
		pvc, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "local-path" {
			t.Fatalf("claim %s: phase %s class %v", name, pvc.Status.Phase, pvc.Spec.StorageClassName)
		}
		pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pv.Status.Phase != corev1.VolumeBound || pv.Spec.Local == nil || !strings.HasPrefix(pv.Spec.Local.Path, dataDir) {
			t.Fatalf("volume %s: phase %s local %+v", pv.Name, pv.Status.Phase, pv.Spec.Local)
		}
		if i == 1 {
			hostDir = pv.Spec.Local.Path
		}
	}

	// A file in db-1's volume, read by the module; then again by the
	// module in db-1's replacement.
	if err := os.WriteFile(filepath.Join(hostDir, "hello.txt"), []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", e.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	netcs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cat := func() (string, error) {
		u := netcs.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("db-1").SubResource("exec").
			VersionedParams(&corev1.PodExecOptions{Container: "web", Command: []string{"httpserver", "cat", "/data/hello.txt"},
				Stdout: true, Stderr: true}, scheme.ParameterCodec).URL()
		ex, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
		if err != nil {
			return "", err
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var stdout, stderr strings.Builder
		err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
		if err != nil {
			return "", fmt.Errorf("%w: %s", err, stderr.String())
		}
		return stdout.String(), nil
	}
	if out, err := cat(); err != nil || out != "kept\n" {
		t.Fatalf("cat in db-1: %q %v", out, err)
	}
	old, err := cs.CoreV1().Pods("default").Get(ctx, "db-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods("default").Delete(ctx, "db-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, cs, "default", "db-1", wait, "replaced and Ready", func(p *corev1.Pod) bool {
		return p.UID != old.UID && p.DeletionTimestamp == nil && isReady(p)
	})
	testutil.Eventually(t, 30*time.Second, func() error {
		out, err := cat()
		if err != nil {
			return err
		}
		if out != "kept\n" {
			return fmt.Errorf("cat in the new db-1: %q", out)
		}
		return nil
	})

	// Scale to 2: db-2 goes, its claim and volume stay.
	var dir2 string
	if pvc, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data-db-2", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else {
		dir2 = pv.Spec.Local.Path
	}
	if _, err := os.Stat(dir2); err != nil {
		t.Fatalf("db-2's volume directory: %v", err)
	}
	scale, err := cs.AppsV1().StatefulSets("default").GetScale(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 2
	if _, err := cs.AppsV1().StatefulSets("default").UpdateScale(ctx, "db", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() error {
		if _, err := cs.CoreV1().Pods("default").Get(ctx, "db-2", metav1.GetOptions{}); err == nil {
			return fmt.Errorf("db-2 still there")
		}
		for _, name := range []string{"db-0", "db-1"} {
			if p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
				return fmt.Errorf("%s gone with db-2: %v", name, err)
			}
		}
		return nil
	})
	if _, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data-db-2", metav1.GetOptions{}); err != nil {
		t.Fatalf("db-2's claim after scale-down: %v", err)
	}
	// The claim deleted: its volume goes, then its directory.
	if err := cs.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "data-db-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() error {
		if _, err := os.Stat(dir2); !os.IsNotExist(err) {
			return fmt.Errorf("db-2's volume directory still there: %v", err)
		}
		return nil
	})
	if _, err := os.Stat(hostDir); err != nil {
		t.Errorf("db-1's volume directory: %v", err)
	}

	// kubectl's rollouts: a template change rolls both pods, history lists
	// the revisions, undo goes back.
	k := newKubectl(t, e)
	dir := t.TempDir()
	k.ok(dir, "", "rollout", "status", "statefulset/db", "--timeout=60s")
	k.ok(dir, "", "set", "env", "statefulset/db", "GREETING=hello")
	if out := k.ok(dir, "", "rollout", "status", "statefulset/db", "--timeout=90s"); !strings.Contains(out, "partitioned roll out complete") &&
		!strings.Contains(out, "rolling update complete") {
		t.Errorf("rollout status: %s", out)
	}
	s, err := cs.AppsV1().StatefulSets("default").Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Status.CurrentRevision != s.Status.UpdateRevision || s.Status.UpdatedReplicas != 2 {
		t.Errorf("after the rollout: %+v", s.Status)
	}
	for _, name := range []string{"db-0", "db-1"} {
		p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Labels[appsv1.ControllerRevisionHashLabelKey] != s.Status.UpdateRevision || len(p.Spec.Containers[0].Env) != 1 {
			t.Errorf("%s after the rollout: revision %s env %v", name, p.Labels[appsv1.ControllerRevisionHashLabelKey], p.Spec.Containers[0].Env)
		}
	}
	if out := k.ok(dir, "", "rollout", "history", "statefulset/db"); !strings.Contains(out, "1 ") || !strings.Contains(out, "2 ") {
		t.Errorf("rollout history: %s", out)
	}
	k.ok(dir, "", "rollout", "undo", "statefulset/db")
	k.ok(dir, "", "rollout", "status", "statefulset/db", "--timeout=90s")
	p, err := cs.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Spec.Containers[0].Env) != 0 {
		t.Errorf("db-0 after undo: env %v", p.Spec.Containers[0].Env)
	}
}
