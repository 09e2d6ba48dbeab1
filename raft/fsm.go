package raft

import (
	"bufio"
	"fmt"
	"io"
	"sync/atomic"

	hraft "github.com/hashicorp/raft"
)

// fsm adapts the index to hashicorp/raft. Apply and Snapshot run on raft's FSM
// goroutine, never concurrently with each other; Persist and Restore may run
// beside client reads, which the index's lock serializes.
type fsm struct {
	idx      *index
	restores atomic.Int64
}

// Apply decodes one entry's batch and applies it. A batch that cannot be
// decoded is applied as nothing (and reported): every server makes the same
// choice, so their states stay equal.
func (f *fsm) Apply(l *hraft.Log) any {
	ops, err := decodeOps(l.Data)
	if err != nil {
		f.idx.applyOps(l.Index, nil)
		return fmt.Errorf("apply log %d: %w", l.Index, err)
	}
	return f.idx.applyOps(l.Index, ops)
}

func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) {
	rev, applied, kvs := f.idx.snapshotState()
	return &fsmSnapshot{rev: rev, applied: applied, kvs: kvs}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 1<<16)
	sr := snapshotReader{r: br, raw: br}
	rev, applied, count, err := sr.header()
	if err != nil {
		return fmt.Errorf("restore snapshot header: %w", err)
	}
	kvs := make([]KeyValue, 0, min(count, 1<<20))
	for i := uint64(0); i < count; i++ {
		kv, err := sr.record()
		if err != nil {
			return fmt.Errorf("restore snapshot record %d of %d: %w", i, count, err)
		}
		kvs = append(kvs, kv)
	}
	f.idx.restore(rev, applied, kvs)
	f.restores.Add(1)
	return nil
}

type fsmSnapshot struct {
	rev     int64
	applied uint64
	kvs     []KeyValue
}

func (s *fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	bw := bufio.NewWriterSize(sink, 1<<16)
	sw := snapshotWriter{w: bw}
	err := sw.header(s.rev, s.applied, len(s.kvs))
	for i := 0; err == nil && i < len(s.kvs); i++ {
		err = sw.record(s.kvs[i])
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot at revision %d: %w", s.rev, err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
