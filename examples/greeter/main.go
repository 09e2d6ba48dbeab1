// Command greeter is a Go program that embeds skiff and extends its API
// with a kind of its own: it defines Greeting from a Go type, installs it,
// and runs a controller for it in the same process. Each Greeting gets a
// ConfigMap it owns, holding the message, and its status names it.
//
//	go run ./examples/greeter --data-dir /tmp/greeter
//	kubectl --kubeconfig /tmp/greeter/kubeconfig.yaml apply -f - <<EOF
//	apiVersion: example.skiff.dev/v1
//	kind: Greeting
//	metadata: {name: hello}
//	spec: {message: hi, times: 2}
//	EOF
//	kubectl --kubeconfig /tmp/greeter/kubeconfig.yaml get greetings
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffhq/skiff/customresource"
	"github.com/skiffhq/skiff/engine"
)

// Greeting is the custom kind: its schema, defaults and validation come
// from this type and its tags.
type Greeting struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              GreetingSpec   `json:"spec"`
	Status            GreetingStatus `json:"status,omitempty"`
}

// GreetingSpec is what the user asks for.
type GreetingSpec struct {
	Message string `json:"message" crd:"minLength=1"`
	// Times is defaulted by the API server when left out.
	Times int32 `json:"times,omitempty" crd:"minimum=1,maximum=5,default=1"`
}

// GreetingStatus is what the controller reports.
type GreetingStatus struct {
	ConfigMap string `json:"configMap,omitempty"`
}

// defineGreetings is the kind as kubectl will show it.
func defineGreetings() (*customresource.Kind[Greeting], error) {
	return customresource.Define[Greeting]("example.skiff.dev", "v1", customresource.Options{
		ShortNames: []string{"gr"},
		PrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
			{Name: "Message", Type: "string", JSONPath: ".spec.message"},
			{Name: "ConfigMap", Type: "string", JSONPath: ".status.configMap"}},
	})
}

// reconciler makes each Greeting's ConfigMap and records it in the status.
func reconciler(cs kubernetes.Interface, client *customresource.Client[Greeting]) customresource.Reconciler[Greeting] {
	return func(ctx context.Context, key types.NamespacedName, g *Greeting) error {
		if g == nil {
			return nil // the ConfigMap goes with it: it has an owner reference
		}
		controller := true
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: g.Name + "-greeting", Namespace: g.Namespace,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "example.skiff.dev/v1", Kind: "Greeting",
					Name: g.Name, UID: g.UID, Controller: &controller}}},
			Data: map[string]string{"text": strings.TrimSpace(strings.Repeat(g.Spec.Message+" ", int(g.Spec.Times)))},
		}
		_, err := cs.CoreV1().ConfigMaps(g.Namespace).Create(ctx, cm, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			_, err = cs.CoreV1().ConfigMaps(g.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
		}
		if err != nil {
			return fmt.Errorf("configmap %s/%s: %w", g.Namespace, cm.Name, err)
		}
		if g.Status.ConfigMap == cm.Name {
			return nil
		}
		g.Status.ConfigMap = cm.Name
		_, err = client.UpdateStatus(ctx, g)
		return err
	}
}

// run installs the kind and runs its controller until ctx ends.
func run(ctx context.Context, cfg *rest.Config, log *slog.Logger) error {
	greetings, err := defineGreetings()
	if err != nil {
		return err
	}
	if err := greetings.Install(ctx, cfg); err != nil {
		return err
	}
	client, err := greetings.Client(cfg)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("clientset: %w", err)
	}
	ctrl := &customresource.Controller[Greeting]{Kind: greetings, Config: cfg, Logger: log,
		Reconcile: reconciler(cs, client)}
	return ctrl.Run(ctx)
}

func main() {
	dataDir := flag.String("data-dir", "", "the engine's data directory (required)")
	listen := flag.String("api-listen", "127.0.0.1:6443", "the API's address, for kubectl")
	flag.Parse()
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "greeter: --data-dir is required")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e, err := engine.New(engine.Config{DataDir: *dataDir, NodeName: "greeter", APIListen: *listen, Logger: log})
	if err != nil {
		log.Error("engine", "err", err)
		os.Exit(1)
	}
	if err := e.Start(ctx); err != nil {
		log.Error("engine start", "err", err)
		os.Exit(1)
	}
	defer e.Stop(context.Background())
	cfg, err := e.RESTConfig()
	if err != nil {
		log.Error("engine client", "err", err)
		os.Exit(1)
	}
	log.Info("greeter running", "kubeconfig", *dataDir+"/kubeconfig.yaml")
	if err := run(ctx, cfg, log); err != nil {
		log.Error("greeter", "err", err)
		os.Exit(1)
	}
}
