package apiserver

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/skiffhq/skiff/customresource"
)

// Greeting is a kind an embedding program defines from a Go type.
type Greeting struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              GreetingSpec   `json:"spec"`
	Status            GreetingStatus `json:"status,omitempty"`
}

type GreetingSpec struct {
	Name  string `json:"name"`
	Times *int32 `json:"times,omitempty" crd:"minimum=1,maximum=3,default=1"`
}

type GreetingStatus struct {
	Message string `json:"message,omitempty"`
}

// TestEmbedderCustomResource: the public customresource package (a CRD
// from a Go type, a typed client, an informer + work-queue controller)
// against this API server: installed and Established, defaults applied,
// the schema enforced, the controller's status written through /status.
func TestEmbedderCustomResource(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cfg.ContentConfig = rest.ContentConfig{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kind, err := customresource.Define[Greeting]("example.com", "v1", customresource.Options{ShortNames: []string{"gr"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := kind.Install(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	client, err := kind.Client(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctl := &customresource.Controller[Greeting]{Kind: kind, Config: cfg, Reconcile: func(ctx context.Context, key types.NamespacedName, g *Greeting) error {
		if g == nil || g.Status.Message != "" {
			return nil
		}
		g.Status.Message = "hello " + g.Spec.Name
		_, err := client.UpdateStatus(ctx, g)
		return err
	}}
	go ctl.Run(ctx)

	g, err := client.Create(ctx, &Greeting{ObjectMeta: metav1.ObjectMeta{Name: "g", Namespace: "default"}, Spec: GreetingSpec{Name: "skiff"}})
	if err != nil {
		t.Fatal(err)
	}
	if g.Spec.Times == nil || *g.Spec.Times != 1 {
		t.Errorf("default not applied: %+v", g.Spec)
	}
	five := int32(5)
	if _, err := client.Create(ctx, &Greeting{ObjectMeta: metav1.ObjectMeta{Name: "loud", Namespace: "default"}, Spec: GreetingSpec{Name: "x", Times: &five}}); err == nil {
		t.Error("times 5 accepted (maximum 3)")
	}
	for {
		got, err := client.Get(ctx, "default", "g")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Message == "hello skiff" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the controller never wrote the status: %+v", got.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
