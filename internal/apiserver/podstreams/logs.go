package podstreams

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/skiffhq/skiff/internal/streams"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// logs serves GET pods/NAME/log.
func (h *handlers) logs(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, "log")
		return
	}
	pod, err := h.pod(r)
	if err != nil {
		writeStatus(w, err)
		return
	}
	opts, err := logOptions(r.URL.Query(), pod.Name)
	if err != nil {
		writeStatus(w, err)
		return
	}
	c, err := container(pod, opts.Container)
	if err != nil {
		writeStatus(w, err)
		return
	}
	opts.Container = c
	lw := &logWriter{w: w}
	if opts.LimitBytes != nil {
		lw.limit = *opts.LimitBytes
	}
	if pod.Spec.NodeName == "" {
		// Kubernetes answers an unscheduled pod's log with an empty stream
		// (there is no log yet), not an error.
		lw.begin()
		return
	}
	req := streams.LogRequest{Namespace: pod.Namespace, Pod: pod.Name, UID: string(pod.UID), Container: c, Options: *opts}
	err = h.cfg.Client.Logs(r.Context(), pod.Spec.NodeName, req, lw)
	switch {
	case err == nil || errors.Is(err, errLimit):
	case r.Context().Err() != nil:
		return // the client left
	case !lw.started:
		writeStatus(w, status(err, pod, c))
		return
	default:
		// The answer has begun: all that is left is to end it early.
		h.log.Warn("streams: log stream ended early", "pod", pod.Namespace+"/"+pod.Name, "container", c, "err", err)
		return
	}
	lw.begin()
}

// errLimit: the client's limitBytes were written.
var errLimit = errors.New("limitBytes reached")

// logWriter answers 200 text/plain at the first byte (so that an error
// before any output can still be a Status) and flushes every write, so that
// kubectl logs -f shows lines as they come.
type logWriter struct {
	w       http.ResponseWriter
	started bool
	limit   int64 // 0: none
	written int64
}

func (l *logWriter) begin() {
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", "text/plain")
		l.w.WriteHeader(http.StatusOK)
	}
}

func (l *logWriter) Write(p []byte) (int, error) {
	l.begin()
	cut := false
	if l.limit > 0 && l.written+int64(len(p)) >= l.limit {
		p, cut = p[:l.limit-l.written], true
	}
	n, err := l.w.Write(p)
	l.written += int64(n)
	if f, ok := l.w.(http.Flusher); ok {
		f.Flush()
	}
	if err == nil && cut {
		err = errLimit
	}
	return n, err
}

// logOptions reads PodLogOptions from the query as the Kubernetes API server
// does, and validates them as it does (422 Invalid).
func logOptions(q url.Values, podName string) (*corev1.PodLogOptions, error) {
	var o corev1.PodLogOptions
	str := func(k string) *[]string { v := q[k]; return &v }
	var err error
	set := func(e error) {
		if err == nil && e != nil {
			err = e
		}
	}
	set(runtime.Convert_Slice_string_To_string(str("container"), &o.Container, nil))
	set(runtime.Convert_Slice_string_To_bool(str("follow"), &o.Follow, nil))
	set(runtime.Convert_Slice_string_To_bool(str("previous"), &o.Previous, nil))
	set(runtime.Convert_Slice_string_To_bool(str("timestamps"), &o.Timestamps, nil))
	set(runtime.Convert_Slice_string_To_bool(str("insecureSkipTLSVerifyBackend"), &o.InsecureSkipTLSVerifyBackend, nil))
	set(runtime.Convert_Slice_string_To_Pointer_int64(str("sinceSeconds"), &o.SinceSeconds, nil))
	set(runtime.Convert_Slice_string_To_Pointer_int64(str("tailLines"), &o.TailLines, nil))
	set(runtime.Convert_Slice_string_To_Pointer_int64(str("limitBytes"), &o.LimitBytes, nil))
	if _, ok := q["sinceTime"]; ok {
		set(metav1.Convert_Slice_string_To_Pointer_v1_Time(str("sinceTime"), &o.SinceTime, nil))
	}
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid log options: %v", err))
	}
	var errs field.ErrorList
	if o.TailLines != nil && *o.TailLines < 0 {
		errs = append(errs, field.Invalid(field.NewPath("tailLines"), *o.TailLines, "must be greater than or equal to 0"))
	}
	if o.LimitBytes != nil && *o.LimitBytes < 1 {
		errs = append(errs, field.Invalid(field.NewPath("limitBytes"), *o.LimitBytes, "must be greater than 0"))
	}
	if o.SinceSeconds != nil && o.SinceTime != nil {
		errs = append(errs, field.Forbidden(field.NewPath(""), "at most one of `sinceTime` or `sinceSeconds` may be specified"))
	}
	if o.SinceSeconds != nil && *o.SinceSeconds < 1 {
		errs = append(errs, field.Invalid(field.NewPath("sinceSeconds"), *o.SinceSeconds, "must be greater than 0"))
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "PodLogOptions"}, podName, errs)
	}
	return &o, nil
}
