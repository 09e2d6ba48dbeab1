package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/engine"
)

// An embedding program starts a member in a directory of its own and drives
// it with client-go, in process: no socket, no kubeconfig.
func Example() {
	dir, _ := os.MkdirTemp("", "skiff-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	e, err := engine.New(engine.Config{DataDir: dir, NodeName: "example", APIListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := e.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer e.Stop(ctx)

	cs, _ := e.Clientset()
	cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	cm, err := cs.CoreV1().ConfigMaps("shop").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "greeting"},
		Data:       map[string]string{"text": "hello"},
	}, metav1.CreateOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s/%s: %s (uid set: %v)\n", cm.Namespace, cm.Name, cm.Data["text"], cm.UID != "")
	// Output: shop/greeting: hello (uid set: true)
}
