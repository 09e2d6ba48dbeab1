package apibench

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/internal/testutil"
)

// TestRunSmall runs the benchmark on a few objects: every row is there and
// measured. No timing is asserted.
func TestRunSmall(t *testing.T) {
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Objects: 40, Concurrency: 4, Lists: 3, Logger: testutil.Logger(t)}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(res) != 6 {
		t.Fatalf("%d results:\n%s", len(res), out.String())
	}
	for _, r := range res {
		if r.Count == 0 || r.PerSecond <= 0 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Fatalf("result %+v", r)
		}
	}
	for _, want := range []string{"GOMAXPROCS=", "create", "get", "list 40 (1 client)", "api/store"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
}
