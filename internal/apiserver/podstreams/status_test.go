package podstreams

import (
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/streams"
)

// The user sees the Backend's message without the sentinel's words in
// front, or Kubernetes' message for a bare sentinel.
func TestStatusMessages(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{NodeName: "n"}}
	for _, tc := range []struct {
		err  error
		code int32
		want string
	}{
		{streams.ErrNoPrevious, 400, `previous terminated container "c" in pod "p" not found`},
		{fmt.Errorf("%w: container %q in pod %q is waiting to start", streams.ErrContainerNotFound, "c", "p"), 400, `container "c" in pod "p" is waiting to start`},
		{fmt.Errorf("pod %q is gone: %w", "p", streams.ErrPodNotRunning), 400, `pod "p" is gone: pod not running`},
		{streams.ErrPodNotRunning, 400, `pod "p" is not running on node "n"`},
		{fmt.Errorf("%w: nobody", streams.ErrNodeUnreachable), 503, "node unreachable: nobody"},
		{fmt.Errorf("%w: slow", streams.ErrNodeTimeout), 504, "node did not answer: slow"},
		{errors.New("disk on fire"), 500, "Internal error occurred: disk on fire"},
	} {
		st := status(tc.err, pod, "c").(apierrors.APIStatus).Status()
		if st.Code != tc.code || st.Message != tc.want {
			t.Errorf("%v: %d %q, want %d %q", tc.err, st.Code, st.Message, tc.code, tc.want)
		}
	}
}
