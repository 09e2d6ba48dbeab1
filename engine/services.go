package engine

import "context"

// startServices runs what makes Services reachable on this node.
// Not built yet.
func (e *Engine) startServices(ctx context.Context) error { return nil }
