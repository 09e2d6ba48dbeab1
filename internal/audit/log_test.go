package audit

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

func event(i int) *auditv1.Event {
	return &auditv1.Event{TypeMeta: metav1.TypeMeta{Kind: "Event", APIVersion: "audit.k8s.io/v1"},
		Level: LevelMetadata, Stage: auditv1.StageResponseComplete, Verb: "get",
		RequestURI: "/api/v1/namespaces/default/configmaps/" + strings.Repeat("x", 900), AuditID: "id"}
}

// TestRotationBoundsTheDisk: with a 1 MB limit and one backup, writing
// about 5 MB of events leaves the live file under 1 MB and one backup
// beside it, every line a whole Event.
func TestRotationBoundsTheDisk(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(Config{Path: path, MaxSizeMB: 1, MaxBackups: 1, QueueSize: 100000})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 { // ~1 KB each
		l.Write(event(i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if d := l.Dropped(); d != 0 {
		t.Fatalf("%d events dropped with room for all", d)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("live file %d bytes", st.Size())
	if st.Size() > 1<<20 {
		t.Fatalf("live file is %d bytes, over the 1 MB limit", st.Size())
	}
	// lumberjack removes old backups in the background: wait (bounded).
	var files []os.DirEntry
	for range 100 {
		files, _ = os.ReadDir(dir)
		if len(files) <= 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(files) != 2 {
		t.Fatalf("%d files in the log directory, want the log and one backup", len(files))
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	n := 0
	for sc.Scan() {
		var ev auditv1.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Kind != "Event" {
			t.Fatalf("line %d is no Event: %v", n, err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("the live file holds no events")
	}
}

// TestWriteNeverBlocks: with the writer held up (a queue of 10 and many
// more events), Write returns at once and counts what it dropped.
func TestWriteNeverBlocks(t *testing.T) {
	l, err := Open(Config{Path: filepath.Join(t.TempDir(), "audit.log"), QueueSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 100000 {
		l.Write(event(i))
	}
	t.Logf("100000 writes took %v, %d dropped", time.Since(start), l.Dropped())
	if l.Dropped() == 0 {
		t.Fatal("nothing dropped: 100000 events cannot all have fit a queue of 10 while the disk writes")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Write(event(0)) // after Close: ignored, no panic
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]Level{"none": LevelNone, "Metadata": LevelMetadata, "request": LevelRequest, "RequestResponse": LevelRequestResponse} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseLevel("verbose"); err == nil || !strings.Contains(err.Error(), "None, Metadata, Request or RequestResponse") {
		t.Errorf("ParseLevel(verbose) error = %v", err)
	}
}
