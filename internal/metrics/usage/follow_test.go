package usage

import (
	"fmt"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
	"github.com/skiffhq/skiff/internal/testutil"
)

// TestFollowReports: reports published on a node's usage subject reach the
// store over a real (in-process) bus; a report whose body names another
// node than its subject is dropped, so a node cannot fill in another's
// numbers under its own subject.
func TestFollowReports(t *testing.T) {
	srv, err := bus.Start(t.Context(), bus.Config{Name: "usage-test", Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	conn := func(name string) *bus.Conn {
		c, err := srv.Connect(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	s := New(time.Hour)
	sub, err := s.Follow(t.Context(), conn("store"), testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	node := conn("node")
	subject, err := bus.SubjectNodeUsage("edge-1.site")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	other, err := bus.SubjectNodeUsage("edge-2")
	if err != nil {
		t.Fatal(err)
	}
	publish := func(subject string, at time.Duration, cpu uint64) {
		t.Helper()
		r := protocol.UsageReport{Node: "edge-1.site", Time: start.Add(at), CPUNanos: cpu}
		if err := bus.Publish(t.Context(), node, subject, r); err != nil {
			t.Fatal(err)
		}
	}
	publish(subject, 0, 0)
	// edge-2 claims to speak for edge-1.site: taken, this sample would
	// leave edge-1.site's counter going back, and no rate.
	publish(other, time.Second, 5e9)
	publish(subject, 2*time.Second, 1e9)
	testutil.Eventually(t, 10*time.Second, func() error {
		m, ok := s.Node("edge-1.site")
		if !ok {
			return fmt.Errorf("no metrics for edge-1.site yet")
		}
		if m.CPUNanoCores != 500_000_000 || m.Window != 2*time.Second {
			t.Fatalf("edge-1.site: %+v, want half a core over 2 s (the mislabelled report ignored)", m)
		}
		return nil
	})
	if _, ok := s.Node("edge-2"); ok {
		t.Error("a mislabelled report made a node")
	}
}
