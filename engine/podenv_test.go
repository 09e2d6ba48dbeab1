package engine

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiffhq/skiff/internal/wasmbuild"
)

// A Wasm pod's argv and environment as Kubernetes builds them: with no
// command, argv[0] is the module's name and args follow it; the Service
// environment variables are there (the kubernetes Service's always, the
// namespace's with service links on), fed to the node over the bus.
func TestWasmPodArgvAndServiceEnv(t *testing.T) {
	ctx := context.Background()
	e, cs := moreEngine(t, "env-1", "127.66.228.0/22")
	rc, err := e.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	// Imported as `skiff image import` does: no Entrypoint in the image.
	hello, err := PushImage(ctx, rc, testGuest(t, "printenv"), "tools/hello:1")
	if err != nil {
		t.Fatal(err)
	}
	printenv, err := PushImage(ctx, rc, wasmbuild.Build(t, "../examples/printenv", false), "printenv:1")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "my-db"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "db"},
			Ports: []corev1.ServicePort{{Name: "sql", Port: 5432, TargetPort: intstr.FromInt32(5432)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kube, err := cs.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := func(name, image string, args []string, links *bool) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{NodeName: "env-1",
			RestartPolicy: corev1.RestartPolicyNever, EnableServiceLinks: links,
			Containers: []corev1.Container{{Name: "main", Image: image, Args: args,
				Env: []corev1.EnvVar{{Name: "DB", Value: "$(MY_DB_SERVICE_HOST):$(MY_DB_SERVICE_PORT_SQL)"}}}}}}
	}
	createPods(t, cs, pod("argv", hello, []string{"a", "b"}, nil),
		pod("links", printenv, nil, nil), pod("nolinks", printenv, nil, ptr(false)))
	for _, n := range []string{"argv", "links", "nolinks"} {
		waitPod(t, cs, "default", n, moreWait, "succeeds", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	}

	waitLogs(t, cs, "argv", corev1.PodLogOptions{}, `args=["hello" "a" "b"]`)

	ip := svc.Spec.ClusterIP
	kubeEnv := []string{
		"KUBERNETES_SERVICE_HOST=" + kube.Spec.ClusterIP + "\n",
		"KUBERNETES_SERVICE_PORT=443\n",
		"KUBERNETES_PORT=tcp://" + kube.Spec.ClusterIP + ":443\n",
		"KUBERNETES_PORT_443_TCP_ADDR=" + kube.Spec.ClusterIP + "\n",
	}
	dbEnv := []string{
		"MY_DB_SERVICE_HOST=" + ip + "\n",
		"MY_DB_SERVICE_PORT=5432\n",
		"MY_DB_SERVICE_PORT_SQL=5432\n",
		"MY_DB_PORT=tcp://" + ip + ":5432\n",
		"MY_DB_PORT_5432_TCP=tcp://" + ip + ":5432\n",
		"MY_DB_PORT_5432_TCP_PROTO=tcp\n",
		"MY_DB_PORT_5432_TCP_PORT=5432\n",
		"MY_DB_PORT_5432_TCP_ADDR=" + ip + "\n",
		"DB=" + ip + ":5432\n", // $(VAR) sees the Service variables
	}
	waitLogs(t, cs, "links", corev1.PodLogOptions{}, append(kubeEnv, dbEnv...)...)
	out := waitLogs(t, cs, "nolinks", corev1.PodLogOptions{}, append(kubeEnv, "DB=$(MY_DB_SERVICE_HOST):$(MY_DB_SERVICE_PORT_SQL)\n")...)
	if strings.Contains(out, "MY_DB_SERVICE_HOST=") {
		t.Errorf("enableServiceLinks: false, yet the pod has the Service's variables:\n%s", out)
	}
}
