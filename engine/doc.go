// Package engine is skiff's front door: an orchestration engine that a Go
// program embeds, and that the skiff binary runs.
//
//	e, err := engine.New(engine.Config{DataDir: dir})
//	if err != nil { ... }
//	if err := e.Start(ctx); err != nil { ... } // returns once the member is ready
//	defer e.Stop(context.Background())
//
// Today an engine is one server: the raft-replicated object store (package
// github.com/skiffhq/skiff/raft) with a durable log in DataDir, and the
// embedded NATS bus (package engine/bus) in single-node mode, with no
// listening port. The Kubernetes API, controllers and node agent are built on
// these in later steps.
//
// Data directory layout (Config.DataDir):
//
//	node-name    the member's name; a restart with another name is refused
//	token        the cluster secret (mode 0600): bus and, later, API credentials
//	raft/wal/    the raft log (raft-wal segments and their meta database)
//	raft/snapshots/  FSM snapshots
//
// Threading: New, Start and Stop are called by one goroutine; the accessors
// may be used from any goroutine once Start has returned.
package engine
