package hbbench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
)

// TestRunSmall runs the benchmark with few agents: every heartbeat
// published must be handled by the lifecycle controller (Run waits for the
// count) and every raft-side update must succeed. No timing is asserted.
func TestRunSmall(t *testing.T) {
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Agents: 40, BusRounds: 3, RaftRounds: 2, Writers: 8,
		APIListen: "127.124.0.1:0", Timeout: 2 * time.Minute, Logger: testutil.Logger(t)}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if res.Bus.Heartbeats != 120 || res.Raft.Heartbeats != 80 || res.Bus.Wall <= 0 || res.Raft.Wall <= 0 {
		t.Fatalf("result %+v", res)
	}
	for _, want := range []string{"GOMAXPROCS=", "raft/bus:", "of a core"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
	t.Log("\n" + out.String())
}
