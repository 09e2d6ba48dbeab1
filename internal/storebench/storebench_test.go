package storebench

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
)

func TestFmtDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		523 * time.Microsecond:   "523µs",
		1234 * time.Microsecond:  "1.23ms",
		56789 * time.Microsecond: "56.8ms",
		2500 * time.Millisecond:  "2.50s",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestRunSmall(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out strings.Builder
	opts := Options{Duration: 300 * time.Millisecond, Servers: []int{1, 3}, Writers: []int{1, 4}, Dir: dir,
		Logger: testutil.Logger(t)}
	res, err := Run(ctx, opts, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	// Per writer count: bbolt-fsync, bbolt-batch, skiff n=1, skiff n=3, skiff-via-follower n=3.
	if len(res) != 10 {
		t.Fatalf("%d results, want 10: %+v", len(res), res)
	}
	_, inMemory := fsType(dir)
	for _, r := range res {
		if r.Writes <= 0 || r.WritesPerSec <= 0 {
			t.Errorf("%+v: no writes", r)
		}
		if r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P99 {
			t.Errorf("%+v: latencies not ordered", r)
		}
		if r.Ratio <= 0 {
			t.Errorf("%+v: no ratio", r)
		}
		if r.Scenario == ScenarioBoltFsync && r.Ratio != 1 {
			t.Errorf("%+v: baseline ratio is not 1", r)
		}
		if r.Note != "" {
			t.Logf("%s servers=%d writers=%d: note: %s", r.Scenario, r.Servers, r.Writers, r.Note)
		}
		switch {
		case inMemory:
			t.Logf("data dir on tmpfs: not checking bytes per write (%v)", r.BytesPerWrite)
		case r.BytesPerWrite <= 0:
			t.Errorf("%+v: no bytes written to disk", r)
		}
	}

	text := out.String()
	for _, field := range []string{"GOMAXPROCS=", "kernel ", "hashicorp/raft v", "raft-wal v", "bbolt v",
		"duration 300ms", "value 300 bytes", "leader only", "ratio"} {
		if !strings.Contains(text, field) {
			t.Errorf("output lacks %q", field)
		}
	}
	// One table line per result, in order, with its scenario, servers and writers.
	var rows [][]string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 {
			continue
		}
		switch f[0] {
		case ScenarioSkiff, ScenarioSkiffFollower, ScenarioBoltFsync, ScenarioBoltBatch:
			rows = append(rows, f)
		}
	}
	if len(rows) != len(res) {
		t.Fatalf("%d table rows for %d results", len(rows), len(res))
	}
	for i, r := range res {
		f := rows[i]
		if f[0] != r.Scenario || f[1] != strconv.Itoa(r.Servers) || f[2] != strconv.Itoa(r.Writers) ||
			f[3] != strconv.Itoa(r.Writes) {
			t.Errorf("row %d %q does not match %+v", i, f, r)
		}
	}

	// Everything Run made is gone.
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("data dir after Run: %v %v", ents, err)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var out strings.Builder
	_, err := Run(ctx, Options{Duration: time.Minute, Servers: []int{3}, Writers: []int{2}, Dir: dir,
		Logger: testutil.Logger(t)}, &out)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run after its context ended: %v", err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("data dir after Run: %v %v", ents, err)
	}
}

func TestOptionsRejectNonsense(t *testing.T) {
	for _, o := range []Options{{Servers: []int{0}}, {Writers: []int{1, -1}}} {
		if _, err := Run(context.Background(), o, &strings.Builder{}); err == nil {
			t.Errorf("Run(%+v) accepted", o)
		}
	}
}

// TestPrintFull runs the benchmark with its defaults and prints the table. It
// takes about a minute, so it runs only with SKIFF_BENCH_FULL=1.
func TestPrintFull(t *testing.T) {
	if os.Getenv("SKIFF_BENCH_FULL") == "" {
		t.Skip("set SKIFF_BENCH_FULL=1 to run the full store benchmark")
	}
	if _, err := Run(context.Background(), Options{Logger: testutil.Logger(t)}, os.Stdout); err != nil {
		t.Fatal(err)
	}
}
