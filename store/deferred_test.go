package store

import (
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// diskContainer reads container id from the file, not the index: nil when the file has no such record.
func diskContainer(t *testing.T, s *Store, id string) *Container {
	t.Helper()
	var c *Container
	if err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketContainers).Get([]byte(id))
		if v == nil {
			return nil
		}
		c = &Container{}
		return c.decode(v)
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

// deferredSetup stores a sandbox and a created container (durably) in a store whose timer waits delay.
func deferredSetup(t *testing.T, delay time.Duration) (*Store, *Sandbox, *Container) {
	t.Helper()
	s := newTestStore(t)
	s.deferDelay = delay
	sb := testSandbox("p")
	c := testContainer(sb.ID, "c")
	c.State = ContainerCreated
	if err := s.AddSandbox(sb); err != nil {
		t.Fatal(err)
	}
	if err := s.AddContainer(c); err != nil {
		t.Fatal(err)
	}
	return s, sb, c
}

// A deferred change is in the index at once, on disk only with the next commit, which it costs nothing: the
// running and exited updates of a lifecycle ride on the next durable write.
func TestDeferredWriteRidesOnTheNextCommit(t *testing.T) {
	s, sb, c := deferredSetup(t, time.Hour)
	before := commitCount(t, s)
	if _, err := s.UpdateContainerDeferred(c.ID, func(x *Container) error { x.State = ContainerRunning; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateContainerDeferred(c.ID, func(x *Container) error { x.State, x.ExitCode = ContainerExited, 3; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Container(c.ID); got.State != ContainerExited || got.ExitCode != 3 {
		t.Fatalf("index after the deferred updates: %v %d, want EXITED 3", got.State, got.ExitCode)
	}
	if d := diskContainer(t, s, c.ID); d.State != ContainerCreated {
		t.Fatalf("disk before any commit: %v, want CREATED (nothing committed yet)", d.State)
	}
	if n := commitCount(t, s); n != before {
		t.Fatalf("deferred updates made %d commits, want none", n-before)
	}
	// A transition check sees the deferred state: the index is the truth while the change waits.
	if _, err := s.UpdateContainerDeferred(c.ID, func(x *Container) error { x.State = ContainerRunning; return nil }); err == nil {
		t.Fatal("EXITED → RUNNING allowed after a deferred exit")
	}
	if _, err := s.UpdateSandbox(sb.ID, func(x *Sandbox) error { x.State = SandboxReady; return nil }); err != nil {
		t.Fatal(err)
	}
	if n := commitCount(t, s); n != before+1 {
		t.Fatalf("%d commits for the deferred updates and the durable one, want 1", n-before)
	}
	if d := diskContainer(t, s, c.ID); d.State != ContainerExited || d.ExitCode != 3 {
		t.Fatalf("disk after the next durable commit: %v %d, want EXITED 3", d.State, d.ExitCode)
	}
	// A deferred delete rides on the sandbox's delete: one commit for the pod's removal.
	if err := s.DeleteContainerDeferred(c.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSandbox(sb.ID); err != nil {
		t.Fatal(err)
	}
	if n := commitCount(t, s); n != before+2 {
		t.Fatalf("%d commits after the pod's removal, want 2", n-before)
	}
	if diskContainer(t, s, c.ID) != nil {
		t.Fatal("the deferred delete did not land with the sandbox's delete")
	}
	assertMemoryIsDisk(t, s)
}

// With no other commit, the timer commits a deferred change within the delay, once for all that were queued.
func TestDeferredWriteCommittedByTheTimer(t *testing.T) {
	s, _, c := deferredSetup(t, 20*time.Millisecond)
	before := commitCount(t, s)
	if _, err := s.UpdateContainerDeferred(c.ID, func(x *Container) error { x.State = ContainerRunning; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateContainerDeferred(c.ID, func(x *Container) error { x.StartedAt = 7; return nil }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for d := diskContainer(t, s, c.ID); d.State != ContainerRunning || d.StartedAt != 7; d = diskContainer(t, s, c.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("deferred updates not committed by the timer: disk %v started %d", d.State, d.StartedAt)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := commitCount(t, s); n != before+1 {
		t.Fatalf("the timer made %d commits, want 1", n-before)
	}
}

// SyncContainer and Close make deferred changes durable; SyncContainer of a container with nothing pending, and
// Flush of an empty queue, commit nothing. After Close, a deferred write is committed at once.
func TestSyncContainerAndClose(t *testing.T) {
	s, sb, c := deferredSetup(t, time.Hour)
	other := testContainer(sb.ID, "o")
	if err := s.AddContainer(other); err != nil {
		t.Fatal(err)
	}
	before := commitCount(t, s)
	s.SyncContainer(c.ID)
	s.Flush()
	if n := commitCount(t, s); n != before {
		t.Fatalf("SyncContainer and Flush with nothing pending made %d commits", n-before)
	}
	if _, err := s.UpdateContainerDeferred(c.ID, func(x *Container) error { x.State = ContainerRunning; return nil }); err != nil {
		t.Fatal(err)
	}
	s.SyncContainer(other.ID)
	if d := diskContainer(t, s, c.ID); d.State != ContainerCreated {
		t.Fatalf("SyncContainer of another container committed this one's change: %v", d.State)
	}
	s.SyncContainer(c.ID)
	if d := diskContainer(t, s, c.ID); d.State != ContainerRunning {
		t.Fatalf("after SyncContainer: disk %v, want RUNNING", d.State)
	}
	if _, err := s.UpdateContainerDeferred(c.ID, func(x *Container) error { x.State = ContainerExited; return nil }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if d := diskContainer(t, s, c.ID); d.State != ContainerExited {
		t.Fatalf("after Close: disk %v, want EXITED", d.State)
	}
	if err := s.DeleteContainerDeferred(other.ID); err != nil {
		t.Fatal(err)
	}
	if diskContainer(t, s, other.ID) != nil {
		t.Fatal("a deferred write after Close was not committed at once")
	}
}

// A deferred change whose commit fails is undone in the index (which equals the disk again).
func TestFailedDeferredWriteIsUndone(t *testing.T) {
	s, _, c := deferredSetup(t, time.Hour)
	if _, err := s.UpdateContainerDeferred(c.ID, func(x *Container) error { x.State = ContainerRunning; return nil }); err != nil {
		t.Fatal(err)
	}
	s.commitHook = func(*bolt.Tx) error { return errors.New("disk full") }
	s.Flush()
	s.commitHook = nil
	if got, _ := s.Container(c.ID); got.State != ContainerCreated {
		t.Fatalf("index after the failed deferred commit: %v, want CREATED", got.State)
	}
	assertMemoryIsDisk(t, s)
}

// AwaitContainer waits for the commit that carries the container's deferred change without making one.
func TestAwaitContainerMakesNoCommit(t *testing.T) {
	s, sb, c := deferredSetup(t, time.Hour)
	s.AwaitContainer(c.ID) // nothing pending: returns at once
	if _, err := s.UpdateContainerDeferred(c.ID, func(x *Container) error { x.State = ContainerRunning; return nil }); err != nil {
		t.Fatal(err)
	}
	before := commitCount(t, s)
	done := make(chan struct{})
	go func() { s.AwaitContainer(c.ID); close(done) }()
	select {
	case <-done:
		t.Fatal("AwaitContainer returned before the change was committed")
	case <-time.After(50 * time.Millisecond):
	}
	if n := commitCount(t, s); n != before {
		t.Fatalf("AwaitContainer made %d commits", n-before)
	}
	if _, err := s.UpdateSandbox(sb.ID, func(x *Sandbox) error { x.State = SandboxReady; return nil }); err != nil {
		t.Fatal(err)
	}
	<-done
	if d := diskContainer(t, s, c.ID); d.State != ContainerRunning {
		t.Fatalf("disk after AwaitContainer: %v", d.State)
	}
}
