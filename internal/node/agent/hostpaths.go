package agent

import (
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Text the node sends to the control plane (events, status messages, and
// the errors of logs, exec and port-forward) reaches API clients, who have
// no business knowing where the node keeps its pods: a `kubectl logs` once
// answered "open /var/lib/skiff/agent/pods/<uid>/logs/c/0.log: no such file
// or directory". The agent words its own errors without paths; hidePaths is
// the second line, for errors that come from the file system or a runtime:
// every path under the data directory is cut to its last element ("0.log").
// The API server scrubs again (podstreams), for nodes that do not.

// pathRoots are the data directory's spellings: as configured, and with its
// symbolic links resolved (a temporary directory often has one).
func (a *Agent) pathRoots() []string {
	a.rootsOnce.Do(func() {
		if a.cfg.DataDir == "" {
			return
		}
		root := filepath.Clean(a.cfg.DataDir)
		if abs, err := filepath.Abs(root); err == nil {
			root = abs
		}
		a.roots = []string{root}
		if real, err := filepath.EvalSymlinks(root); err == nil && real != root {
			a.roots = append(a.roots, real)
		}
	})
	return a.roots
}

// hidePaths returns s with every path under the data directory cut to its
// last element.
func (a *Agent) hidePaths(s string) string {
	for _, root := range a.pathRoots() {
		s = hideUnder(s, root)
	}
	return s
}

// hideErr is err with hidePaths applied to its text; errors.Is and
// errors.As still see what it wraps (the streams sentinels travel by that).
func (a *Agent) hideErr(err error) error {
	if err == nil {
		return nil
	}
	msg := a.hidePaths(err.Error())
	if msg == err.Error() {
		return err
	}
	return &pathlessError{msg: msg, err: err}
}

type pathlessError struct {
	msg string
	err error
}

func (e *pathlessError) Error() string { return e.msg }
func (e *pathlessError) Unwrap() error { return e.err }

// hideStatusPaths applies hidePaths to every message of a pod status that
// the node wrote.
func (a *Agent) hideStatusPaths(st *corev1.PodStatus) {
	st.Message = a.hidePaths(st.Message)
	for i := range st.Conditions {
		st.Conditions[i].Message = a.hidePaths(st.Conditions[i].Message)
	}
	state := func(s *corev1.ContainerState) {
		if s.Waiting != nil {
			s.Waiting.Message = a.hidePaths(s.Waiting.Message)
		}
		if s.Terminated != nil {
			s.Terminated.Message = a.hidePaths(s.Terminated.Message)
		}
	}
	for _, list := range [][]corev1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses, st.EphemeralContainerStatuses} {
		for i := range list {
			state(&list[i].State)
			state(&list[i].LastTerminationState)
		}
	}
}

// hideUnder replaces each path in s that starts with root by its last
// element, or by "the node's data directory" for root itself.
func hideUnder(s, root string) string {
	if root == "" || root == "/" || !strings.Contains(s, root) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, root)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := i + len(root)
		if end < len(s) && s[end] != '/' && !isPathEnd(s[end]) {
			// "/data/agent-2" is not under "/data/agent"
			b.WriteString(s[:end])
			s = s[end:]
			continue
		}
		for end < len(s) && !isPathEnd(s[end]) {
			end++
		}
		tok := strings.TrimRight(s[i:end], "/.")
		b.WriteString(s[:i])
		if rel := strings.Trim(strings.TrimPrefix(tok, root), "/"); rel == "" {
			b.WriteString("the node's data directory")
		} else {
			b.WriteString(filepath.Base(tok))
		}
		s = s[len(tok)+i:]
	}
}

// isPathEnd reports whether c ends a path in a message: a space or the
// punctuation messages put after one.
func isPathEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '"', '\'', '`', ':', ',', ';', ')', ']', '}', '>':
		return true
	}
	return false
}
