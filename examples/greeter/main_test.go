package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/engine"
)

// The program's pieces, run against an engine in this process: the kind is
// installed, the API server defaults and validates Greetings from the Go
// type's tags, and the controller gives each one its ConfigMap.
func Example() {
	dir, _ := os.MkdirTemp("", "skiff-greeter")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := engine.New(engine.Config{DataDir: dir, NodeName: "example", APIListen: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := e.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer e.Stop(context.Background())
	cfg, _ := e.RESTConfig()
	go run(ctx, cfg, quiet)

	greetings, _ := defineGreetings()
	client, _ := greetings.Client(cfg)
	var created *Greeting
	for ctx.Err() == nil { // until run has installed the kind
		if created, err = client.Create(ctx, &Greeting{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
			Spec: GreetingSpec{Message: "hi"}}); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if created == nil {
		fmt.Println(err)
		return
	}
	fmt.Println("times defaulted to", created.Spec.Times)
	cs := kubernetes.NewForConfigOrDie(cfg)
	for ctx.Err() == nil {
		g, err := client.Get(ctx, "default", "hello")
		if err == nil && g.Status.ConfigMap != "" {
			cm, _ := cs.CoreV1().ConfigMaps("default").Get(ctx, g.Status.ConfigMap, metav1.GetOptions{})
			fmt.Printf("%s holds %q\n", g.Status.ConfigMap, cm.Data["text"])
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, err = client.Create(ctx, &Greeting{ObjectMeta: metav1.ObjectMeta{Name: "loud", Namespace: "default"},
		Spec: GreetingSpec{Message: "hey", Times: 9}})
	fmt.Println("times 9 refused:", apierrors.IsInvalid(err))
	// Output:
	// times defaulted to 1
	// hello-greeting holds "hi"
	// times 9 refused: true
}
