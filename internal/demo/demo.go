// Package demo installs skiff's demo application: a Deployment of an SDK
// handler module (examples/handler) behind a Service, what the README's
// first command shows a newcomer.
package demo

//go:generate sh -c "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags='-s -w' -o hello.wasm ../../examples/handler && gzip -9nf hello.wasm"

import (
	"bytes"
	"compress/gzip"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/engine"
)

// helloGz is examples/handler built for wasip1 as a reactor and gzipped
// (go generate rebuilds it), so the demo needs no Go toolchain: a skiff
// binary alone can run it.
//
//go:embed hello.wasm.gz
var helloGz []byte

// Module returns the demo's Wasm module.
func Module() ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(helloGz))
	if err != nil {
		return nil, fmt.Errorf("demo module: %w", err)
	}
	return io.ReadAll(zr)
}

// Names of what Install creates, in the default namespace.
const (
	Name  = "hello"
	Image = "skiff-demo/hello:1"
	Port  = 8080
)

// Install pushes the module into the engine's registry, creates the
// ConfigMap, Deployment and Service (keeping them if they exist, so a
// restart with the demo leaves the user's edits alone), and waits until the
// Service answers. It returns the URL to curl.
func Install(ctx context.Context, e *engine.Engine, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	wasm, err := Module()
	if err != nil {
		return "", err
	}
	rc, err := e.RESTConfig()
	if err != nil {
		return "", err
	}
	if _, err := engine.PushImage(ctx, rc, wasm, Image); err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	cs, err := e.Clientset()
	if err != nil {
		return "", err
	}
	if err := create(ctx, cs); err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	var url string
	for ctx.Err() == nil {
		svc, err := cs.CoreV1().Services("default").Get(ctx, Name, metav1.GetOptions{})
		if err == nil && svc.Spec.ClusterIP != "" {
			url = "http://" + net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(Port)) + "/"
			if answers(ctx, url) {
				return url, nil
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("demo: %s did not answer within %s: %w", url, timeout, ctx.Err())
}

func answers(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func create(ctx context.Context, cs kubernetes.Interface) error {
	labels := map[string]string{"app": Name}
	wasmClass := "wasm"
	replicas := int32(2)
	objs := []func() error{
		func() error {
			_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: Name + "-config", Labels: labels},
				Data:       map[string]string{"GREETING": "Hello from a Wasm pod on skiff"}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: Name, Labels: labels},
				Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
					Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
						RuntimeClassName: &wasmClass,
						Containers: []corev1.Container{{Name: Name, Image: Image,
							EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
								LocalObjectReference: corev1.LocalObjectReference{Name: Name + "-config"}}}},
							Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: Port}},
							ReadinessProbe: &corev1.Probe{PeriodSeconds: 2, ProbeHandler: corev1.ProbeHandler{
								HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}},
						}}}}}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: Name, Labels: labels},
				Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: Port,
					TargetPort: intstr.FromString("http")}}}}, metav1.CreateOptions{})
			return err
		},
	}
	for _, fn := range objs {
		if err := fn(); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}
