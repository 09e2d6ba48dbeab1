package nsbench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
)

// TestRunSmall runs the benchmark on tiny namespaces: each is filled,
// deleted through the namespace controller until gone (Run checks it is),
// and measured beside the store. No timing is asserted.
func TestRunSmall(t *testing.T) {
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Sizes: []int{20, 60}, Concurrency: 4, Timeout: time.Minute,
		Logger: testutil.Logger(t)}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(res) != 2 {
		t.Fatalf("%d results:\n%s", len(res), out.String())
	}
	for _, r := range res {
		if r.Namespace <= 0 || r.Store <= 0 || r.PerObject() <= 0 {
			t.Fatalf("result %+v", r)
		}
	}
	for _, want := range []string{"GOMAXPROCS=", "namespace/store", "per-object cost at 60 / at 20 objects"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
	t.Log("\n" + out.String())
}
