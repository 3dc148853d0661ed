package events

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestFanOutAndSlowSubscriberDropped(t *testing.T) {
	var b Broker
	fast := b.Subscribe()
	slow := b.Subscribe()
	for i := 0; i < Buffer+1; i++ {
		b.Publish(&runtimeapi.ContainerEventResponse{ContainerId: "c"})
		<-fast.C // the fast one keeps up
	}
	// The slow one never read: it was dropped and its channel closed after Buffer events.
	n := 0
	for range slow.C {
		n++
	}
	if n != Buffer {
		t.Fatalf("slow subscriber got %d buffered events, want %d", n, Buffer)
	}
	if b.Len() != 1 {
		t.Fatalf("subscribers = %d, want 1", b.Len())
	}
	fast.Close()
	fast.Close()
	if b.Len() != 0 {
		t.Fatal("close did not unsubscribe")
	}
}
