package events

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestFanOutAndSlowSubscriberDropped(t *testing.T) {
	var b Broker
	fast, closeFast := b.Subscribe()
	slow, _ := b.Subscribe()
	for i := 0; i < Buffer+1; i++ {
		b.Publish(&runtimeapi.ContainerEventResponse{ContainerId: "c"})
		<-fast // the fast one keeps up
	}
	// The slow one never read: it was dropped and its channel closed after Buffer events.
	n := 0
	for range slow {
		n++
	}
	if n != Buffer {
		t.Fatalf("slow subscriber got %d buffered events, want %d", n, Buffer)
	}
	if b.Len() != 1 {
		t.Fatalf("subscribers = %d, want 1", b.Len())
	}
	closeFast()
	closeFast()
	if b.Len() != 0 {
		t.Fatal("close did not unsubscribe")
	}
}
