//go:build wasip1

// Command httpclient calls other pods and Services from a Wasm pod: for each
// argument it prints one line. An argument that is a URL is fetched with
// sdk.HTTPClient (connections through the host's sockets, names resolved by
// the host through the cluster DNS): "GET <url>: <status> <body>". An
// argument "lookup:<name>" resolves name with Go's own resolver, which reads
// the pod's /etc/resolv.conf and asks the cluster DNS over UDP through the
// same sockets: "lookup <name>: <addresses>". With "-loop" first it repeats
// the list every second, forever, each time on new connections; otherwise it
// exits, 1 if any call failed.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/skiffhq/skiff/sdk"
)

func main() {
	args := os.Args[1:]
	loop := len(args) > 0 && args[0] == "-loop"
	if loop {
		args = args[1:]
	}
	client := sdk.HTTPClient()
	client.Timeout = 5 * time.Second
	if loop {
		// Each round on new connections, so that a NetworkPolicy change
		// shows in the next round (established connections keep going,
		// as on Kubernetes).
		t := sdk.Transport.(*http.Transport).Clone()
		t.DisableKeepAlives = true
		client.Transport = t
	}
	for {
		failed := false
		for _, a := range args {
			line, err := call(client, a)
			if err != nil {
				line = err.Error()
				failed = true
			}
			fmt.Println(line)
		}
		if !loop {
			if failed {
				os.Exit(1)
			}
			return
		}
		time.Sleep(time.Second)
	}
}

func call(client *http.Client, a string) (string, error) {
	if name, ok := strings.CutPrefix(a, "lookup:"); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, name)
		if err != nil {
			return "", fmt.Errorf("lookup %s: error: %w", name, err)
		}
		return fmt.Sprintf("lookup %s: %s", name, strings.Join(addrs, " ")), nil
	}
	resp, err := client.Get(a)
	if err != nil {
		return "", fmt.Errorf("GET %s: error: %w", a, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("GET %s: error: reading the body: %w", a, err)
	}
	return fmt.Sprintf("GET %s: %d %s", a, resp.StatusCode, strings.TrimSpace(string(body))), nil
}
