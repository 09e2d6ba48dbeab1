package engine

import "context"

// startControllers runs the scheduler and the workload controllers.
// Not built yet.
func (e *Engine) startControllers(ctx context.Context) error { return nil }
