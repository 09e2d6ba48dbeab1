package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
	"github.com/skiffhq/skiff/internal/testutil"
)

// A node reads the Secrets and ConfigMaps its own pods use, and nothing
// else, as Kubernetes' node authorizer allows.
func TestNodeReadsOnlyWhatItsPodsUse(t *testing.T) {
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "authz"})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"used", "unused"} {
		if _, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name},
			Data: map[string][]byte{"k": []byte(name)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A pod on another node ("far") uses "used"; it is never run here.
	if _, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{NodeName: "far", Containers: []corev1.Container{{Name: "c", Image: "127.0.0.1:9/x:1",
			Env: []corev1.EnvVar{{Name: "K", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "used"}, Key: "k"}}}}}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	conn, err := e.testBus().Connect(ctx, "test-node")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ask := func(node, name string) (protocol.ObjectResponse, error) {
		subject, err := bus.SubjectNodeObjects(node)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return bus.Request[protocol.ObjectRequest, protocol.ObjectResponse](rctx, conn, subject,
			protocol.ObjectRequest{Node: node, Kind: "Secret", Namespace: "default", Name: name})
	}
	testutil.Eventually(t, 10*time.Second, func() error { // the dispatcher's cache sees the pod
		resp, err := ask("far", "used")
		if err != nil {
			return err
		}
		if resp.Secret == nil || string(resp.Secret.Data["k"]) != "used" {
			t.Fatalf("far got %+v", resp)
		}
		return nil
	})
	if _, err := ask("far", "unused"); err == nil || !strings.Contains(err.Error(), "no pod bound to it uses it") {
		t.Errorf("far read a Secret none of its pods uses: %v", err)
	}
	if _, err := ask("authz", "used"); err == nil {
		t.Errorf("node authz read a Secret only another node's pod uses")
	}
}
