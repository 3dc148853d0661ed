// Package events fans container lifecycle events out to GetContainerEvents subscribers. A slow subscriber loses
// events (and is told so by a closed channel) rather than blocking the runtime.
package events

import (
	"sync"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Buffer is how many events a subscriber may lag behind before it is dropped.
const Buffer = 1024

// Broker delivers events to subscribers.
type Broker struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

// Subscription is one subscriber's stream.
type Subscription struct {
	C      chan *runtimeapi.ContainerEventResponse
	broker *Broker
	once   sync.Once
}

// Subscribe returns a new subscription; call Close when done.
func (b *Broker) Subscribe() *Subscription {
	s := &Subscription{C: make(chan *runtimeapi.ContainerEventResponse, Buffer), broker: b}
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[*Subscription]struct{}{}
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.broker.mu.Lock()
	s.closeLocked()
	s.broker.mu.Unlock()
}

func (s *Subscription) closeLocked() {
	s.once.Do(func() {
		delete(s.broker.subs, s)
		close(s.C)
	})
}

// Publish sends ev to every subscriber without blocking; a subscriber whose buffer is full is dropped.
func (b *Broker) Publish(ev *runtimeapi.ContainerEventResponse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		select {
		case s.C <- ev:
		default:
			s.closeLocked()
		}
	}
}

// Len returns the number of subscribers.
func (b *Broker) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}
