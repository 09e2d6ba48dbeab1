package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiffhq/skiff/raft"
)

// Watch timing. A watch without timeoutSeconds ends after maxWatch, as the
// apiserver ends watches after a while so clients rebalance; clients
// reconnect from the last resourceVersion they saw.
const (
	maxWatch                = 30 * time.Minute
	defaultBookmarkInterval = time.Minute
)

// watchEvent is one line of a watch stream.
type watchEvent struct {
	Type   watch.EventType `json:"type"`
	Object any             `json:"object"`
}

func (s *Server) watch(w http.ResponseWriter, r *http.Request, req request) error {
	sel, err := s.selectorFor(r, req)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	rv, err := parseRV(q.Get("resourceVersion"))
	if err != nil {
		return err
	}
	timeout := maxWatch
	if ts := q.Get("timeoutSeconds"); ts != "" {
		n, err := strconv.Atoi(ts)
		if err != nil || n < 0 {
			return apierrors.NewBadRequest(fmt.Sprintf("invalid timeoutSeconds %q", ts))
		}
		timeout = min(time.Duration(n)*time.Second, maxWatch)
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	flusher, ok := w.(http.Flusher)
	if !ok {
		return apierrors.NewInternalError(errors.New("streaming unsupported by this connection"))
	}
	enc := &eventWriter{s: s, w: w, f: flusher, req: req, table: wantsTable(r), include: q.Get("includeObject")}

	// "" and "0": start with the current state as ADDED events.
	var initial []runtime.Object
	if rv == 0 {
		page, err := s.cfg.Store.List(ctx, prefix(req.res, req.ns), raft.ListOptions{
			ReadOptions: raft.ReadOptions{Stale: q.Get("resourceVersion") == "0"}})
		if err != nil {
			return storeError(err, req.res, "")
		}
		for _, kv := range page.KVs {
			obj, err := s.objs.decode(req.res, kv)
			if err != nil {
				return err
			}
			if sel.matches(obj) {
				initial = append(initial, obj)
			}
		}
		rv = page.Rev
	}
	watcher, err := s.cfg.Store.Watch(ctx, prefix(req.res, req.ns), rv)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(http.StatusOK)
	if err != nil {
		// As the apiserver: a too-old resourceVersion is an ERROR event in
		// a 200 stream, which informers answer by listing again.
		enc.status(storeError(err, req.res, ""))
		return nil
	}
	defer watcher.Stop()
	flusher.Flush()
	for _, obj := range initial {
		if !enc.event(watch.Added, obj) {
			return nil
		}
	}
	bookmarks := q.Get("allowWatchBookmarks") == "true"
	tick := time.NewTicker(s.bookmarkInterval)
	defer tick.Stop()
	last := rv
	for {
		select {
		case ev, ok := <-watcher.Events():
			if !ok {
				if err := watcher.Err(); errors.Is(err, raft.ErrWatchOverflow) || errors.Is(err, raft.ErrCompacted) {
					enc.status(apierrors.NewResourceExpired("the watch fell behind: " + err.Error()))
				}
				return nil
			}
			last = ev.Rev()
			typ, obj, err := s.translate(req, sel, ev)
			if err != nil {
				enc.status(err)
				return nil
			}
			if obj != nil && !enc.event(typ, obj) {
				return nil
			}
		case <-tick.C:
			if bookmarks && !enc.table {
				bm, err := s.newObject(req.res, req.res.GVK())
				if err != nil {
					return nil
				}
				bm.GetObjectKind().SetGroupVersionKind(req.res.GVK())
				mustMeta(bm).SetResourceVersion(strconv.FormatInt(last, 10))
				if !enc.event(watch.Bookmark, bm) {
					return nil
				}
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// translate turns a store event into a watch event under a selector, with
// Kubernetes' rules: an object that starts matching is ADDED, one that stops
// matching is DELETED, so a filtered watcher's view stays consistent.
func (s *Server) translate(req request, sel selector, ev raft.Event) (watch.EventType, runtime.Object, error) {
	cur, err := s.objs.decode(req.res, ev.KV)
	if err != nil {
		return "", nil, err
	}
	if ev.Type == raft.Deleted {
		if sel.matches(cur) {
			return watch.Deleted, cur, nil
		}
		return "", nil, nil
	}
	nowMatches := sel.matches(cur)
	if ev.Created {
		if nowMatches {
			return watch.Added, cur, nil
		}
		return "", nil, nil
	}
	wasMatching := true
	if !sel.empty() {
		prev, err := s.objs.decode(req.res, ev.PrevKV)
		if err != nil {
			return "", nil, err
		}
		wasMatching = sel.matches(prev)
	}
	switch {
	case nowMatches && wasMatching:
		return watch.Modified, cur, nil
	case nowMatches:
		return watch.Added, cur, nil
	case wasMatching:
		return watch.Deleted, cur, nil
	}
	return "", nil, nil
}

// eventWriter writes watch events, each flushed at once; as Tables when the
// client asked (column definitions with the first event only).
type eventWriter struct {
	s       *Server
	w       http.ResponseWriter
	f       http.Flusher
	req     request
	table   bool
	include string
	sent    bool
}

func (e *eventWriter) event(typ watch.EventType, obj runtime.Object) bool {
	var payload any = obj
	if e.table && typ != watch.Bookmark {
		t, err := e.s.table(e.req.res, []runtime.Object{obj}, e.include, !e.sent)
		if err != nil {
			e.status(err)
			return false
		}
		payload = t
	}
	e.sent = true
	return e.write(watchEvent{Type: typ, Object: payload})
}

func (e *eventWriter) status(err error) {
	st := metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure}
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		st = se.Status()
		st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	} else {
		st.Message, st.Code, st.Reason = err.Error(), http.StatusInternalServerError, metav1.StatusReasonInternalError
	}
	e.write(watchEvent{Type: watch.Error, Object: &st})
}

func (e *eventWriter) write(ev watchEvent) bool {
	b, err := json.Marshal(ev)
	if err != nil {
		return false
	}
	if _, err := e.w.Write(append(b, '\n')); err != nil {
		return false
	}
	e.f.Flush()
	return true
}
