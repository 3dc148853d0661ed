package cri

import (
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

// GetContainerEvents streams container lifecycle events until the client goes away. A client that falls too far
// behind has its stream ended with ResourceExhausted, and can reconnect and relist.
func (s *RuntimeServer) GetContainerEvents(req *runtimeapi.GetEventsRequest, stream grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse]) error {
	evs, cancel := s.Events.Subscribe()
	defer cancel()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ev, ok := <-evs:
			if !ok {
				return errdefs.ResourceExhausted("event stream fell behind and was dropped; reconnect and relist")
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}
