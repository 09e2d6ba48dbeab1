package raft

import (
	"fmt"
	"testing"

	hraft "github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// A follower whose uncommitted tail is cut by a new leader ("clearing log
// suffix") must open its log again after a crash. raft-wal before v0.4.1
// sealed the tail segment without an index on DeleteRange, and the next
// start panicked with "sealed segment has no index block" (raft-wal issue
// 31): a server killed after a leader change could not come back. This is
// the log as Open sets it up, truncated and reopened.
func TestLogReopensAfterTailTruncation(t *testing.T) {
	dir := t.TempDir()
	open := func() (*wal.WAL, *metadb.BoltMetaDB) {
		t.Helper()
		meta := &metadb.BoltMetaDB{}
		w, err := wal.Open(dir, wal.WithMetaStore(meta), wal.WithSegmentSize(64*1024))
		if err != nil {
			t.Fatalf("open the log: %v", err)
		}
		return w, meta
	}
	store := func(w *wal.WAL, from, to uint64, term uint64) {
		t.Helper()
		var logs []*hraft.Log
		for i := from; i <= to; i++ {
			logs = append(logs, &hraft.Log{Index: i, Term: term, Type: hraft.LogCommand, Data: []byte(fmt.Sprintf("entry %d", i))})
		}
		if err := w.StoreLogs(logs); err != nil {
			t.Fatalf("store %d..%d: %v", from, to, err)
		}
	}
	w, meta := open()
	store(w, 1, 10, 1)
	if err := w.DeleteRange(8, 10); err != nil { // the new leader's log differs from 8 on
		t.Fatal(err)
	}
	store(w, 8, 12, 2)
	w.Close()
	meta.Close()

	w, meta = open() // the restart after the crash
	defer meta.Close()
	defer w.Close()
	for i := uint64(1); i <= 12; i++ {
		var l hraft.Log
		if err := w.GetLog(i, &l); err != nil {
			t.Fatalf("entry %d after the restart: %v", i, err)
		}
		if want := uint64(1 + i/8); l.Term != want {
			t.Errorf("entry %d has term %d, want %d", i, l.Term, want)
		}
	}
}
