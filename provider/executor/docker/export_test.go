package docker

import "context"

// LateOOM exposes lateOOM to the external tests: whether the daemon logged an
// OOM kill of the task's container.
func (e *Executor) LateOOM(ctx context.Context, id string) (bool, error) {
	tk, err := e.get(id)
	if err != nil {
		return false, err
	}
	return e.lateOOM(ctx, tk), nil
}
