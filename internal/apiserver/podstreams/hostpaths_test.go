package podstreams

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/streams"
)

func TestHidePaths(t *testing.T) {
	for in, want := range map[string]string{
		"open container log: open /var/lib/skiff/agent/pods/u/logs/c/0.log: no such file or directory": "open container log: open 0.log: no such file or directory",
		`mount "/data": host path "/srv/x/y" is not a directory`:                                       `mount "/data": host path "y" is not a directory`,
		"pull https://registry.example/v2/app/manifests/1 failed":                                      "pull https://registry.example/v2/app/manifests/1 failed",
		"exec in c: (/tmp/a/b)": "exec in c: (b)",
		"path=/a/b/c/ ok":       "path=c/ ok",
	} {
		if got := hidePaths(in); got != want {
			t.Errorf("hidePaths(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStatusHidesHostPaths: whatever a node says, the Status a client gets
// names no host path, and the sentinel still decides the code.
func TestStatusHidesHostPaths(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{NodeName: "n"}}
	const leak = "/var/lib/skiff/agent/pods/u1/logs/c/0.log"
	for _, tc := range []struct {
		err  error
		code int32
	}{
		{errors.New("open container log: open " + leak + ": no such file or directory"), 500},
		{fmt.Errorf("%w: container %q: open %s: gone", streams.ErrContainerNotFound, "c", leak), 400},
	} {
		st := status(tc.err, pod, "c").(apierrors.APIStatus).Status()
		if st.Code != tc.code {
			t.Errorf("%v: code %d, want %d", tc.err, st.Code, tc.code)
		}
		if strings.Contains(st.Message, "/var/lib") || !strings.Contains(st.Message, "0.log") {
			t.Errorf("%v: message %q still names the host path (or lost the file's name)", tc.err, st.Message)
		}
	}
}
