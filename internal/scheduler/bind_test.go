package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/skiffhq/skiff/internal/testutil"
)

// A binding that fails drops its assumption and the pod is placed again:
// the node (room for one pod) is not held by a pod that never landed, and
// the retry is not skipped as "already assumed". Once bound, the pod
// counts on its node once.
func TestBindFailureForgetsAndRetries(t *testing.T) {
	cs := fake.NewSimpleClientset()
	var binds atomic.Int32
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := a.(k8stesting.CreateAction).GetObject().(*corev1.Binding)
		if binds.Add(1) == 1 {
			return true, nil, apierrors.NewInternalError(errors.New("store unavailable"))
		}
		obj, err := cs.Tracker().Get(corev1.SchemeGroupVersion.WithResource("pods"), b.Namespace, b.Name)
		if err != nil {
			return true, nil, err
		}
		p := obj.(*corev1.Pod).DeepCopy()
		p.Spec.NodeName = b.Target.Name
		return true, nil, cs.Tracker().Update(corev1.SchemeGroupVersion.WithResource("pods"), p, b.Namespace)
	})
	f := informers.NewSharedInformerFactory(cs, 0)
	s, err := New(Config{Client: cs, Pods: f.Core().V1().Pods(), Nodes: f.Core().V1().Nodes(),
		Recorder: record.NewFakeRecorder(100), Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	node := testNode("only", map[string]string{corev1.LabelHostname: "only"}, "4", "8Gi", 1)
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := testPod("100m", "")
	pod.Name, pod.UID = "a", "uid-a"
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Start(ctx.Done())
	go func() { s.Run(ctx); close(done) }()
	testutil.Eventually(t, 30*time.Second, func() error {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "a", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Spec.NodeName != "only" {
			return fmt.Errorf("not bound after %d bindings", binds.Load())
		}
		s.cache.mu.Lock()
		defer s.cache.mu.Unlock()
		n := s.cache.nodes["only"]
		if n == nil || n.pods != 1 || s.cache.pods["uid-a"].assumed {
			return fmt.Errorf("cache not caught up: %+v", n)
		}
		return nil
	})
	if got := binds.Load(); got != 2 {
		t.Fatalf("%d bindings, want 2 (one failed, one retried)", got)
	}
}
