package engine

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/sleeper"
	"github.com/skiffhq/skiff/internal/testutil"
)

// runningPods lists the active pods sel selects that run (all containers
// running), by node.
func runningPods(t *testing.T, cs kubernetes.Interface, sel map[string]string) (all []corev1.Pod, running map[string]int) {
	t.Helper()
	l, err := cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(sel).String()})
	if err != nil {
		t.Fatal(err)
	}
	running = map[string]int{}
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			running[p.Spec.NodeName]++
		}
	}
	return l.Items, running
}

func idleTemplate(app, image string) corev1.PodTemplateSpec {
	wasm, grace := "wasm", int64(1)
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{RuntimeClassName: &wasm, TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{Name: "idle", Image: image}}}}
}

// A DaemonSet of real Wasm pods covers the server's node and a worker that
// joins, and its pods go with it (the garbage collector, Background).
func TestDaemonSetCoversNodes(t *testing.T) {
	ctx := context.Background()
	host := testRegistry(t, map[string][]byte{"idle:1": sleeper.Module()})
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "ds-cp", APIListen: "127.0.0.1:0", BusListen: "127.0.0.1:0",
		ClusterPodCIDR: "127.105.0.0/16", ServiceCIDR: "127.106.0.0/16", CrashLoopBackOff: 200 * time.Millisecond})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	sel := map[string]string{"app": "daemon"}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "daemon", Namespace: "default"},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: sel}, Template: idleTemplate("daemon", host+"/idle:1")}}
	if _, err := cs.AppsV1().DaemonSets("default").Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantNodes := func(nodes ...string) {
		t.Helper()
		testutil.Eventually(t, moreWait, func() error {
			_, running := runningPods(t, cs, sel)
			var have []string
			for n, k := range running {
				if k != 1 {
					return fmt.Errorf("%d pods running on %s", k, n)
				}
				have = append(have, n)
			}
			sort.Strings(have)
			if fmt.Sprint(have) != fmt.Sprint(nodes) {
				return fmt.Errorf("running on %v, want %v", have, nodes)
			}
			got, err := cs.AppsV1().DaemonSets("default").Get(ctx, "daemon", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if n := int32(len(nodes)); got.Status.DesiredNumberScheduled != n || got.Status.NumberReady != n {
				return fmt.Errorf("status %+v", got.Status)
			}
			return nil
		})
	}
	wantNodes("ds-cp")

	apiURL, err := url.Parse(e.api.URL())
	if err != nil {
		t.Fatal(err)
	}
	w, err := StartWorker(ctx, WorkerConfig{Server: apiURL.Host, Token: e.joinToken, DataDir: t.TempDir(), NodeName: "ds-edge",
		ImageHosts: []string{"loopback"}, CrashLoopBackOff: 200 * time.Millisecond, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop(context.Background()) })
	wantNodes("ds-cp", "ds-edge")

	if err := cs.AppsV1().DaemonSets("default").Delete(ctx, "daemon", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, moreWait, func() error {
		if all, _ := runningPods(t, cs, sel); len(all) != 0 {
			return fmt.Errorf("%d pods left", len(all))
		}
		return nil
	})
}

// Deleting a Deployment of real Wasm pods with each propagation policy does
// what Kubernetes does: Background and Foreground take its ReplicaSet and
// pods (Foreground before the Deployment itself), Orphan leaves them
// running, released from the Deployment.
func TestDeploymentDeletionPropagation(t *testing.T) {
	ctx := context.Background()
	host := testRegistry(t, map[string][]byte{"idle:1": sleeper.Module()})
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "gc-1", PodCIDR: "127.105.0.0/22", ServiceCIDR: "127.106.0.0/16",
		CrashLoopBackOff: 200 * time.Millisecond})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []metav1.DeletionPropagation{metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan} {
		t.Run(string(p), func(t *testing.T) {
			app := "gc-" + strings.ToLower(string(p))
			sel := map[string]string{"app": app}
			two := int32(2)
			d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: "default"},
				Spec: appsv1.DeploymentSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: sel},
					Template: idleTemplate(app, host+"/idle:1")}}
			if _, err := cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, moreWait, func() error {
				if _, running := runningPods(t, cs, sel); running["gc-1"] != 2 {
					return fmt.Errorf("%d pods running", running["gc-1"])
				}
				return nil
			})
			if err := cs.AppsV1().Deployments("default").Delete(ctx, app, metav1.DeleteOptions{PropagationPolicy: &p}); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, moreWait, func() error {
				if _, err := cs.AppsV1().Deployments("default").Get(ctx, app, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					return fmt.Errorf("deployment still there (%v)", err)
				}
				return nil
			})
			rsSel := metav1.ListOptions{LabelSelector: labels.SelectorFromSet(sel).String()}
			if p == metav1.DeletePropagationForeground {
				if rss, err := cs.AppsV1().ReplicaSets("default").List(ctx, rsSel); err != nil || len(rss.Items) != 0 {
					t.Fatalf("foreground: the deployment went before its replicaset (%v)", err)
				}
			}
			testutil.Eventually(t, moreWait, func() error {
				rss, err := cs.AppsV1().ReplicaSets("default").List(ctx, rsSel)
				if err != nil {
					return err
				}
				all, running := runningPods(t, cs, sel)
				if p == metav1.DeletePropagationOrphan {
					if len(rss.Items) != 1 || len(rss.Items[0].OwnerReferences) != 0 || running["gc-1"] != 2 {
						return fmt.Errorf("orphan: %d replicasets, %d pods running", len(rss.Items), running["gc-1"])
					}
					return nil
				}
				if len(rss.Items) != 0 || len(all) != 0 {
					return fmt.Errorf("%d replicasets, %d pods left", len(rss.Items), len(all))
				}
				return nil
			})
		})
	}
}
