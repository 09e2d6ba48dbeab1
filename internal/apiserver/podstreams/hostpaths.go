package podstreams

import (
	"path"
	"regexp"
)

// A node's errors travel to the client's Status. The agent words its own
// without the node's paths, but a node of another version, or an error from
// a place nobody thought of, could still carry one ("open
// /var/lib/skiff/agent/pods/<uid>/logs/c/0.log: no such file or directory"):
// where a node keeps its pods is none of an API client's business. So the
// API side cuts every absolute path of two components or more in a node's
// message to its last element. A one-component path ("/data", a mountPath)
// is left alone: it is what the user wrote, and a host path has more.

// hostPath matches an absolute path of two components or more standing
// after the start, a space, a quote, a bracket or "=" (not after ":", so
// that a URL's "//host/path" is left alone).
var hostPath = regexp.MustCompile(`(^|[\s"'(\[=])(/[^\s"'():,;\]]+/[^\s"'():,;\]]*[^\s"'():,;\]./])`)

// hidePaths returns s with each such path cut to its last element.
func hidePaths(s string) string {
	return hostPath.ReplaceAllStringFunc(s, func(m string) string {
		sub := hostPath.FindStringSubmatch(m)
		return sub[1] + path.Base(sub[2])
	})
}

// hideHostPaths is err with hidePaths applied to its text; errors.Is still
// sees what it wraps.
func hideHostPaths(err error) error {
	msg := hidePaths(err.Error())
	if msg == err.Error() {
		return err
	}
	return &scrubbed{msg: msg, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }
