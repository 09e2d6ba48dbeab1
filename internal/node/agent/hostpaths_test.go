package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiffhq/skiff/internal/node/protocol"
	"github.com/skiffhq/skiff/internal/streams"
)

func TestHideUnder(t *testing.T) {
	root := "/var/lib/skiff/agent"
	for in, want := range map[string]string{
		"open /var/lib/skiff/agent/pods/u1/logs/c/0.log: no such file or directory":              "open 0.log: no such file or directory",
		`mount "/data": host path /var/lib/skiff/agent/pods/u1/volumes/cache is not a directory`: `mount "/data": host path cache is not a directory`,
		"mkdir /var/lib/skiff/agent: permission denied":                                          "mkdir the node's data directory: permission denied",
		"a (/var/lib/skiff/agent/pods/u1/x) and '/var/lib/skiff/agent/y'":                        "a (x) and 'y'",
		"/var/lib/skiff/agent-2/pods is another directory":                                       "/var/lib/skiff/agent-2/pods is another directory",
		"nothing here": "nothing here",
	} {
		if got := hideUnder(in, root); got != want {
			t.Errorf("hideUnder(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestReporterHidesHostPaths: events and status messages leave the node
// without its data directory in them.
func TestReporterHidesHostPaths(t *testing.T) {
	dir := t.TempDir()
	r := newReporter(&Agent{cfg: Config{NodeName: "node-r", DataDir: dir}})
	path := filepath.Join(dir, "pods", "u1", "volumes", "cache")
	r.event(protocol.Event{Namespace: "ns", Pod: "p", UID: "u1", Type: corev1.EventTypeWarning, Reason: "FailedMount",
		Message: "MountVolume.SetUp failed: mkdir " + path + ": permission denied"})
	st := podStatus("u1", corev1.PodPending)
	st.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{Reason: "StartError", Message: "open " + path + "/f: denied"}}}}
	r.status(st)
	rep := r.take()
	if len(rep.Events) != 1 || len(rep.Pods) != 1 {
		t.Fatalf("report %+v", rep)
	}
	for _, msg := range []string{rep.Events[0].Message, rep.Pods[0].Status.ContainerStatuses[0].State.Terminated.Message} {
		if strings.Contains(msg, dir) {
			t.Errorf("message leaves the node with its path: %q", msg)
		}
	}
	if got := st.Status.ContainerStatuses[0].State.Terminated.Message; !strings.Contains(got, dir) {
		t.Errorf("the caller's status was rewritten: %q", got)
	}
}

// TestLogsOfAVanishedFile: a log listed on disk that is gone when it is
// opened answers that the container's log is not available, in words
// without the node's path (kubectl once showed "InternalError … open <host
// path>/0.log: no such file").
func TestLogsOfAVanishedFile(t *testing.T) {
	dir := t.TempDir()
	a := &Agent{cfg: Config{NodeName: "node-l", DataDir: dir}}
	a.pods = newPodManager(a)
	logDir := filepath.Join(dir, "pods", "u1", "logs", "c")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Listed, but opening it finds nothing: a dangling link.
	if err := os.Symlink(filepath.Join(logDir, "gone"), filepath.Join(logDir, "0.log")); err != nil {
		t.Fatal(err)
	}
	err := streamBackend{a}.Logs(context.Background(), streams.LogRequest{Namespace: "ns", Pod: "p", UID: "u1", Container: "c"}, io.Discard)
	if !errors.Is(err, streams.ErrContainerNotFound) {
		t.Fatalf("err = %v, want ErrContainerNotFound", err)
	}
	if strings.Contains(err.Error(), dir) {
		t.Errorf("the error names the host path: %v", err)
	}
}

// TestPreviousLogOnDisk: the previous start's log is found from the current
// log's own number. Cutting the path by the digits of the restart count
// broke when the two differ: while a container waits to restart, the count
// has already moved on (9.log with a count of 10 cut one character too
// many; 10.log with a count of 11 named the current file as the previous).
func TestPreviousLogOnDisk(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{7, 8, 9, 10} {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.log", n)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		current  string
		restarts int32
		want     string
	}{
		{"9.log", 9, "8.log"},
		{"9.log", 10, "8.log"},
		{"10.log", 10, "9.log"},
		{"10.log", 11, "9.log"},
		{"7.log", 7, ""},
	} {
		c := &container{logPath: filepath.Join(dir, tc.current), status: corev1.ContainerStatus{RestartCount: tc.restarts}}
		got := c.previousLogOnDisk()
		if tc.want == "" && got != "" || tc.want != "" && got != filepath.Join(dir, tc.want) {
			t.Errorf("current %s, restart count %d: previous %q, want %s", tc.current, tc.restarts, got, tc.want)
		}
	}
}
