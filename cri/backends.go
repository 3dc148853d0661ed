package cri

import (
	"github.com/noded/noded/events"
	"github.com/noded/noded/store"
)

// Backends are the packages that do the work behind the RuntimeService's RPC groups. A nil backend makes its
// RPCs answer Unimplemented.
type Backends struct {
	Sandboxes  SandboxBackend
	Containers ContainerBackend
	// Pods runs the RPCs that span a pod and its containers; it is needed with Sandboxes and Containers.
	Pods    PodBackend
	Store   *store.Store // the state store shared by the backends
	Events  *events.Broker
	Stats   StatsBackend
	Streams StreamServer
	// Starts bounds RunPodSandbox and CreateContainer calls in flight; nil means no bound.
	Starts *StartLimiter
}

// streamChunk is how many items one message of a streaming list RPC carries.
const streamChunk = 500

func chunks[T any](items []T, send func([]T) error) error {
	if len(items) == 0 {
		return send(nil)
	}
	for len(items) > 0 {
		n := min(len(items), streamChunk)
		if err := send(items[:n]); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}
