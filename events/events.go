// Package events fans container lifecycle events out to GetContainerEvents subscribers. A slow subscriber loses
// events (and is told so by a closed channel) rather than blocking the runtime.
package events

import (
	"sync"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Buffer is how many events a subscriber may lag behind before it is dropped.
const Buffer = 1024

// Broker delivers events to subscribers. The zero Broker has none.
type Broker struct {
	mu   sync.Mutex
	subs map[*subscription]struct{}
}

// subscription is one subscriber's stream.
type subscription struct {
	c      chan *runtimeapi.ContainerEventResponse
	broker *Broker
	once   sync.Once
}

// Subscribe starts a subscription. Its channel carries every event published from now on, in order, and is closed
// when the subscriber falls Buffer events behind (it is then dropped) or when cancel is called. cancel ends the
// subscription; calling it again does nothing.
func (b *Broker) Subscribe() (events <-chan *runtimeapi.ContainerEventResponse, cancel func()) {
	s := &subscription{c: make(chan *runtimeapi.ContainerEventResponse, Buffer), broker: b}
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[*subscription]struct{}{}
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s.c, s.close
}

func (s *subscription) close() {
	s.broker.mu.Lock()
	s.closeLocked()
	s.broker.mu.Unlock()
}

func (s *subscription) closeLocked() {
	s.once.Do(func() {
		delete(s.broker.subs, s)
		close(s.c)
	})
}

// Publish sends ev to every subscriber without blocking; a subscriber whose buffer is full is dropped.
func (b *Broker) Publish(ev *runtimeapi.ContainerEventResponse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		select {
		case s.c <- ev:
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
