package bus

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestSubjectApp(t *testing.T) {
	got, err := SubjectApp("shop", "orders.new", false)
	if err != nil || got != "skiff.apps.shop.orders.new" {
		t.Fatalf("SubjectApp = %q, %v", got, err)
	}
	if got, err := SubjectApp("shop", "orders.>", true); err != nil || got != "skiff.apps.shop.orders.>" {
		t.Fatalf("SubjectApp with wildcard = %q, %v", got, err)
	}
	if s, ok := AppSubjectOf("shop", "skiff.apps.shop.orders.new"); !ok || s != "orders.new" {
		t.Fatalf("AppSubjectOf = %q, %v", s, ok)
	}
	for _, subj := range []string{"skiff.apps.other.orders.new", "skiff.apps.shop", "skiff.apps.shop.", "_INBOX.x", "skiff.node.n.pods",
		"skiff.apps.shopx.a"} {
		if s, ok := AppSubjectOf("shop", subj); ok {
			t.Errorf("AppSubjectOf(shop, %q) = %q: outside the namespace", subj, s)
		}
	}
	// Guest subjects that would climb out of the namespace, act as a
	// wildcard where none is allowed, or name another namespace's
	// subtree, are refused; namespaces that are not one token too.
	for _, tc := range []struct {
		ns, subject string
		wildcards   bool
	}{
		{"shop", ">", false},
		{"shop", "*", false},
		{"shop", "a.*", false},
		{"shop", "", true},
		{"shop", "a..b", true},
		{"shop", ".a", true},
		{"shop", "a.>.b", true},
		{"shop", "a b", true},
		{"shop", strings.Repeat("a", 300), true},
		{"sh.op", "a", false},
		{"*", "a", false},
		{">", "a", false},
		{"", "a", false},
	} {
		if got, err := SubjectApp(tc.ns, tc.subject, tc.wildcards); err == nil {
			t.Errorf("SubjectApp(%q, %q, %v) = %q, want an error", tc.ns, tc.subject, tc.wildcards, got)
		}
	}
	// Whatever a guest subscribes to stays under its namespace: the widest
	// pattern matches nothing of another namespace nor of the engine.
	widest, _ := SubjectApp("shop", ">", true)
	for _, s := range []string{"skiff.apps.other.x", "skiff.node.n.pods", "skiff.nodes.register", SubjectKV, "skiff.kvevents.shop.k", "$KV.x.y"} {
		if natsMatches(widest, s) {
			t.Errorf("%s matches %s", widest, s)
		}
	}
	if !natsMatches(widest, "skiff.apps.shop.a.b") {
		t.Errorf("%s does not match its own namespace's subjects", widest)
	}
	if got, err := SubjectKVEvents("shop", "hits"); err != nil || got != "skiff.kvevents.shop.hits" {
		t.Fatalf("SubjectKVEvents = %q, %v", got, err)
	}
	if _, err := SubjectKVEvents("sh.op", "hits"); err == nil {
		t.Fatal("SubjectKVEvents accepted a namespace with a dot")
	}
}

// natsMatches is NATS' matching of a subject against a pattern, with ">".
func natsMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}

// TestServeConcurrent: requests are handled at once, up to the workers:
// each of these handlers waits until all of them have started.
func TestServeConcurrent(t *testing.T) {
	s := start(t, Config{Name: "concurrent"})
	srv, cli := inProc(t, s, "server"), inProc(t, s, "client")
	const n = 4
	var started sync.WaitGroup
	started.Add(n)
	sub, err := ServeConcurrent(context.Background(), srv, "skiff.test.concurrent", "q", n, func(ctx context.Context, req int) (int, error) {
		started.Done()
		started.Wait()
		return req * 2, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	if err := srv.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, n)
	for i := range n {
		go func() {
			got, err := Request[int, int](testCtx(t), cli, "skiff.test.concurrent", i)
			if err == nil && got != 2*i {
				err = fmt.Errorf("reply %d, want %d", got, 2*i)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
