package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/internal/faultinject"
)

// waitLog waits until noded's log contains s.
func (f *faultEnv) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if strings.Contains(f.n.Log(), s) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("noded never logged %q", s)
}

// TestCreateRetriesGetAbandonedCreations: a RunPodSandbox or CreateContainer whose caller gave up (its deadline
// passed while noded was still creating) is handed to the retry with the same name, whether the retry comes
// while the creation is still in flight or after it finished, instead of "name is reserved"; a creation no retry
// claims is removed after unclaimed_create_timeout.
func TestCreateRetriesGetAbandonedCreations(t *testing.T) {
	f := newFaultEnv(t, 42, "unclaimed_create_timeout = \"3s\"\n", nil)
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(f.ctx, 500*time.Millisecond) }

	t.Run("RetryWhileInFlight", func(t *testing.T) {
		cfg := f.podConfig(t, "retry-inflight")
		f.arm(t, "delay "+faultinject.SandboxNetworkAdded+" 3s")
		ctx, cancel := short()
		_, err := f.n.Runtime.RunPodSandbox(ctx, cfg, "")
		cancel()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("RunPodSandbox with a deadline shorter than the creation: %v, want DeadlineExceeded", err)
		}
		id, err := f.n.Runtime.RunPodSandbox(f.ctx, cfg, "") // the creation is still in its delay
		if err != nil {
			t.Fatalf("retry of an abandoned RunPodSandbox: %v", err)
		}
		pods, _ := f.n.Runtime.ListPodSandbox(f.ctx, nil)
		if len(pods) != 1 || pods[0].Id != id || pods[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Fatalf("pods after the retry: %v, want the one sandbox %s READY", pods, id)
		}
		if _, err := f.n.Runtime.RunPodSandbox(f.ctx, cfg, ""); status.Code(err) != codes.AlreadyExists {
			t.Fatalf("a third RunPodSandbox of a claimed name: %v, want AlreadyExists", err)
		}

		// The same for a container; this retry comes after the creation finished.
		ccfg := f.sleeperConfig(cfg)
		f.arm(t, "delay "+faultinject.ContainerRuntimeCreated+" 2s")
		ctx, cancel = short()
		_, err = f.n.Runtime.CreateContainer(ctx, id, ccfg, cfg)
		cancel()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("CreateContainer with a deadline shorter than the creation: %v, want DeadlineExceeded", err)
		}
		f.waitLog(t, "container created after its caller gave up")
		cid, err := f.n.Runtime.CreateContainer(f.ctx, id, ccfg, cfg)
		if err != nil {
			t.Fatalf("retry of an abandoned CreateContainer: %v", err)
		}
		if err := f.n.Runtime.StartContainer(f.ctx, cid); err != nil {
			t.Fatal(err)
		}
		if cs, _ := f.n.Runtime.ListContainers(f.ctx, nil); len(cs) != 1 || cs[0].Id != cid {
			t.Fatalf("containers after the retry: %v, want only %s", cs, cid)
		}
		time.Sleep(4 * time.Second) // past unclaimed_create_timeout: claimed objects stay
		if _, err := f.n.Runtime.ContainerStatus(f.ctx, cid, false); err != nil {
			t.Fatalf("a claimed container was reaped: %v", err)
		}
		f.removeAllPods(t)
	})

	t.Run("UnclaimedIsRemoved", func(t *testing.T) {
		cfg := f.podConfig(t, "retry-never")
		f.arm(t, "delay "+faultinject.SandboxNetworkAdded+" 2s")
		ctx, cancel := short()
		_, err := f.n.Runtime.RunPodSandbox(ctx, cfg, "")
		cancel()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("RunPodSandbox: %v, want DeadlineExceeded", err)
		}
		f.waitLog(t, "sandbox created after its caller gave up")
		f.waitLog(t, "removing a sandbox no retry claimed")
		deadline := time.Now().Add(time.Minute)
		for {
			pods, err := f.n.Runtime.ListPodSandbox(f.ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(pods) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("an unclaimed sandbox was not removed: %v", pods)
			}
			time.Sleep(100 * time.Millisecond)
		}
		f.assertNoLeaksFull(t)
	})
}

// TestPodStartLimit: with max_concurrent_pod_starts = 1, a RunPodSandbox while another is in flight waits
// pod_start_queue_wait in the queue and then gets ResourceExhausted; one more finding the queue full gets it at
// once; once the first finished, pods start again.
func TestPodStartLimit(t *testing.T) {
	f := newFaultEnv(t, 43, "max_concurrent_pod_starts = 1\npod_start_queue_wait = \"1s\"\n", nil)
	f.arm(t, "delay "+faultinject.SandboxNetworkIntent+" 6s")
	first := make(chan error, 1)
	go func() {
		_, err := f.n.Runtime.RunPodSandbox(f.ctx, f.podConfig(t, "slow"), "")
		first <- err
	}()
	f.waitLog(t, "faultinject: delaying noded at "+faultinject.SandboxNetworkIntent)
	queued := make(chan error, 1)
	go func() {
		_, err := f.n.Runtime.RunPodSandbox(f.ctx, f.podConfig(t, "queued"), "")
		queued <- err
	}()
	f.waitLog(t, "waiting for a pod start slot")
	_, err := f.n.Runtime.RunPodSandbox(f.ctx, f.podConfig(t, "queue-full"), "")
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("RunPodSandbox with the queue full: %v, want ResourceExhausted", err)
	}
	if err := <-queued; status.Code(err) != codes.ResourceExhausted {
		t.Errorf("RunPodSandbox queued longer than pod_start_queue_wait: %v, want ResourceExhausted", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("the slow RunPodSandbox: %v", err)
	}
	if _, err := f.n.Runtime.RunPodSandbox(f.ctx, f.podConfig(t, "after"), ""); err != nil {
		t.Fatalf("RunPodSandbox once the slot is free: %v", err)
	}
	f.removeAllPods(t)
	f.assertNoLeaksFull(t)
}
