package schedbench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
)

// TestRunSmall runs the benchmark at a tiny size so it cannot rot: every
// pod binds and each row is measured. No timing is asserted.
func TestRunSmall(t *testing.T) {
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Nodes: []int{3}, Pods: []int{30}, Writers: 4, MinStoreWrites: 100, Timeout: time.Minute,
		Logger: testutil.Logger(t)}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(res) != 1 || res[0].PerSecond <= 0 || res[0].StoreWrites <= 0 || res[0].APIBinds <= 0 {
		t.Fatalf("results %+v\n%s", res, out.String())
	}
	for _, want := range []string{"GOMAXPROCS=", "bound/s", "bound/store", "bound/api binds"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
}
