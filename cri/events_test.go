package cri

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/events"
)

// fakeEvents is an EventBackend with one subscription at a time, fed by publish; drop closes it the way a broker
// drops a subscriber that fell behind.
type fakeEvents struct {
	mu        sync.Mutex
	c         chan *runtimeapi.ContainerEventResponse
	subscribe chan struct{} // receives when Subscribe ran
	cancels   int
}

func newFakeEvents() *fakeEvents { return &fakeEvents{subscribe: make(chan struct{}, 1)} }

func (f *fakeEvents) Subscribe() (<-chan *runtimeapi.ContainerEventResponse, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.c = make(chan *runtimeapi.ContainerEventResponse, 8)
	f.subscribe <- struct{}{}
	return f.c, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.cancels++
	}
}

func (f *fakeEvents) publish(ev *runtimeapi.ContainerEventResponse) { f.c <- ev }
func (f *fakeEvents) drop()                                         { close(f.c) }

func (f *fakeEvents) cancelled() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cancels
}

// eventStream is the client's end of GetContainerEvents: what is sent arrives on sent; failSend makes Send fail.
type eventStream struct {
	grpc.ServerStream
	ctx      context.Context
	sent     chan *runtimeapi.ContainerEventResponse
	failSend error
}

func (s *eventStream) Context() context.Context { return s.ctx }
func (s *eventStream) Send(ev *runtimeapi.ContainerEventResponse) error {
	if s.failSend != nil {
		return s.failSend
	}
	s.sent <- ev
	return nil
}

// startEvents runs GetContainerEvents for a client until it returns; the result arrives on the returned channel.
func startEvents(t *testing.T, b EventBackend, stream *eventStream) <-chan error {
	t.Helper()
	s := newTestServer(t, Info{}, Backends{Events: b})
	done := make(chan error, 1)
	go func() { done <- s.GetContainerEvents(&runtimeapi.GetEventsRequest{}, stream) }()
	return done
}

func ev(id string, typ runtimeapi.ContainerEventType) *runtimeapi.ContainerEventResponse {
	return &runtimeapi.ContainerEventResponse{ContainerId: id, ContainerEventType: typ}
}

// GetContainerEvents streams what is published, in order, and ends without an error, its subscription ended, when
// the client goes.
func TestGetContainerEventsStreamsUntilTheClientGoes(t *testing.T) {
	f := newFakeEvents()
	client, leave := context.WithCancel(context.Background())
	stream := &eventStream{ctx: client, sent: make(chan *runtimeapi.ContainerEventResponse)}
	done := startEvents(t, f, stream)
	<-f.subscribe
	want := []*runtimeapi.ContainerEventResponse{ev("a", runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT),
		ev("a", runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT), ev("b", runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)}
	for _, e := range want {
		f.publish(e)
	}
	for i, e := range want {
		if got := <-stream.sent; got != e {
			t.Fatalf("event %d sent: %v, want %v", i, got, e)
		}
	}
	leave()
	if err := <-done; err != nil {
		t.Fatalf("GetContainerEvents after the client went: %v, want nil", err)
	}
	if n := f.cancelled(); n != 1 {
		t.Fatalf("subscription ended %d times, want once", n)
	}
}

// A client dropped for falling behind gets ResourceExhausted (it can reconnect and relist); one whose Send fails
// gets that error. Both end their subscription.
func TestGetContainerEventsEnds(t *testing.T) {
	f := newFakeEvents()
	stream := &eventStream{ctx: context.Background(), sent: make(chan *runtimeapi.ContainerEventResponse)}
	done := startEvents(t, f, stream)
	<-f.subscribe
	f.drop()
	if err := <-done; errdefs.Code(err) != codes.ResourceExhausted {
		t.Errorf("dropped subscriber: %v, want ResourceExhausted", err)
	}
	if n := f.cancelled(); n != 1 {
		t.Errorf("dropped: subscription ended %d times, want once", n)
	}

	f = newFakeEvents()
	gone := errors.New("transport closed")
	stream = &eventStream{ctx: context.Background(), failSend: gone}
	done = startEvents(t, f, stream)
	<-f.subscribe
	f.publish(ev("a", runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT))
	if err := <-done; !errors.Is(err, gone) {
		t.Errorf("failed Send: %v, want its error", err)
	}
	if n := f.cancelled(); n != 1 {
		t.Errorf("failed Send: subscription ended %d times, want once", n)
	}
}

// The real broker behaves as GetContainerEvents relies on: what is published after the subscription reaches the
// client, and the subscription is gone once the client is.
func TestGetContainerEventsWithTheBroker(t *testing.T) {
	b := &events.Broker{}
	client, leave := context.WithCancel(context.Background())
	stream := &eventStream{ctx: client, sent: make(chan *runtimeapi.ContainerEventResponse, 8)}
	s := newTestServer(t, Info{}, Backends{Events: b})
	done := make(chan error, 1)
	go func() { done <- s.GetContainerEvents(&runtimeapi.GetEventsRequest{}, stream) }()
	// Publish until the subscription is there (an event published before it is not delivered).
	e := ev("a", runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	for b.Len() == 0 {
		b.Publish(e)
		runtime.Gosched()
	}
	b.Publish(e)
	if got := <-stream.sent; got != e {
		t.Fatalf("sent %v", got)
	}
	leave()
	if err := <-done; err != nil {
		t.Fatalf("GetContainerEvents after the client went: %v", err)
	}
	if b.Len() != 0 {
		t.Fatalf("%d subscriptions left after the client went", b.Len())
	}
}
