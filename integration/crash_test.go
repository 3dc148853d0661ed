package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
	"github.com/noded/noded/internal/faultinject"
)

// faultEnv is a podEnv whose noded is built with kill points (the faultinject tag).
type faultEnv struct {
	*podEnv
	faultFile string
}

// newFaultEnv starts such a noded; topConfig holds top-level config keys.
func newFaultEnv(t *testing.T, netIdx int, topConfig string, extra map[string]v1.Image) *faultEnv {
	t.Helper()
	framework.RequireRoot(t)
	faultFile := filepath.Join(t.TempDir(), "fault")
	e := newPodEnvOpts(t, netIdx, framework.Options{
		BuildTags: "faultinject", Env: []string{faultinject.EnvFile + "=" + faultFile}, TopConfig: topConfig,
	}, extra)
	return &faultEnv{podEnv: e, faultFile: faultFile}
}

// arm makes noded act at the next pass through point: "" + point kills it, "delay <point> <d>" slows it.
func (f *faultEnv) arm(t *testing.T, what string) {
	t.Helper()
	if err := os.WriteFile(f.faultFile, []byte(what), 0o600); err != nil {
		t.Fatal(err)
	}
}

// crashAndRestart waits for noded to kill itself at the armed point and starts it again on the same state.
func (f *faultEnv) crashAndRestart(t *testing.T, point string) {
	t.Helper()
	if !f.n.WaitExit(2 * time.Minute) {
		t.Fatalf("noded did not reach kill point %s", point)
	}
	if !strings.Contains(f.n.Log(), "faultinject: killing noded at "+point) {
		t.Fatalf("noded died, but not at kill point %s", point)
	}
	f.n.Respawn()
}

// randomImage is an image of two 256 KiB random layers that shares nothing with any other image.
func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(256<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// crashScenario drives noded to one kill point and checks what the restarted noded reports.
type crashScenario struct {
	// setup prepares the objects the call works on (without a kill point armed).
	setup func(t *testing.T, f *faultEnv) *crashObjects
	// call is the RPC that reaches the point; noded dies in it.
	call func(f *faultEnv, o *crashObjects) error
	// after checks the restarted noded's view of the objects (nil: only "present and consistent, or gone").
	after func(t *testing.T, f *faultEnv, o *crashObjects)
}

type crashObjects struct {
	podCfg    *runtimeapi.PodSandboxConfig
	pod, ctr  string
	image     string
	container *runtimeapi.ContainerConfig
}

func (f *faultEnv) crashPodConfig(t *testing.T, name string, podPID bool) *runtimeapi.PodSandboxConfig {
	cfg := f.podConfig(t, name)
	cfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 39400}}
	if podPID {
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	}
	return cfg
}

func (f *faultEnv) sleeperConfig(podCfg *runtimeapi.PodSandboxConfig) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "sleeper"},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"sleep", "100000"},
		LogPath:  "sleeper.log",
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: podCfg.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
}

func podOnly(t *testing.T, f *faultEnv) *crashObjects {
	cfg := f.crashPodConfig(t, "crash", false)
	return &crashObjects{podCfg: cfg, pod: f.runPod(t, cfg), container: f.sleeperConfig(cfg)}
}

func withCreated(t *testing.T, f *faultEnv) *crashObjects {
	o := podOnly(t, f)
	id, err := f.n.Runtime.CreateContainer(f.ctx, o.pod, o.container, o.podCfg)
	if err != nil {
		t.Fatal(err)
	}
	o.ctr = id
	return o
}

func withRunning(t *testing.T, f *faultEnv) *crashObjects {
	o := withCreated(t, f)
	if err := f.n.Runtime.StartContainer(f.ctx, o.ctr); err != nil {
		t.Fatal(err)
	}
	return o
}

func runPodCall(f *faultEnv, o *crashObjects) error {
	_, err := f.n.Runtime.RunPodSandbox(f.ctx, o.podCfg, "")
	return err
}

func (f *faultEnv) containerState(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	st, err := f.n.Runtime.ContainerStatus(f.ctx, id, false)
	if err != nil {
		t.Fatalf("ContainerStatus %s after the restart: %v", id, err)
	}
	return st.Status
}

// expectPods checks that the pods listed are exactly want (by count) and READY with an IP of the test network.
func (f *faultEnv) expectReadyPods(t *testing.T, want int) {
	t.Helper()
	pods, err := f.n.Runtime.ListPodSandbox(f.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != want {
		t.Fatalf("%d pods listed after the restart, want %d: %v", len(pods), want, pods)
	}
	for _, p := range pods {
		st, err := f.n.Runtime.PodSandboxStatus(f.ctx, p.Id, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY || !strings.HasPrefix(st.Status.GetNetwork().GetIp(), f.net.Prefix()) {
			t.Errorf("pod %s after the restart: %v ip %q, want READY with an IP", p.Id, st.Status.State, st.Status.GetNetwork().GetIp())
		}
	}
}

// expectExecWorks runs a command in a running container.
func (f *faultEnv) expectExecWorks(t *testing.T, id string) {
	t.Helper()
	out, _, err := f.n.Runtime.ExecSync(f.ctx, id, []string{"echo", "alive"}, 10*time.Second)
	if err != nil || strings.TrimSpace(string(out)) != "alive" {
		t.Errorf("exec in %s after the restart: %q %v", id, out, err)
	}
}

func crashScenarios() map[string]crashScenario {
	runPod := func(podPID bool, ready bool) crashScenario {
		return crashScenario{
			setup: func(t *testing.T, f *faultEnv) *crashObjects {
				return &crashObjects{podCfg: f.crashPodConfig(t, "crash", podPID)}
			},
			call: runPodCall,
			after: func(t *testing.T, f *faultEnv, o *crashObjects) {
				if !ready {
					// Cut short before it was recorded ready: rolled back, and the name is free again.
					f.expectReadyPods(t, 0)
					id, err := f.n.Runtime.RunPodSandbox(f.ctx, o.podCfg, "")
					if err != nil {
						t.Fatalf("RunPodSandbox again after the rollback: %v", err)
					}
					o.pod = id
				}
				f.expectReadyPods(t, 1)
			},
		}
	}
	createCtr := func(kept bool) crashScenario {
		return crashScenario{
			setup: podOnly,
			call: func(f *faultEnv, o *crashObjects) error {
				_, err := f.n.Runtime.CreateContainer(f.ctx, o.pod, o.container, o.podCfg)
				return err
			},
			after: func(t *testing.T, f *faultEnv, o *crashObjects) {
				f.expectReadyPods(t, 1)
				cs, err := f.n.Runtime.ListContainers(f.ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !kept {
					if len(cs) != 0 {
						t.Fatalf("a container cut short in its creation is listed: %v", cs)
					}
					id, err := f.n.Runtime.CreateContainer(f.ctx, o.pod, o.container, o.podCfg)
					if err != nil {
						t.Fatalf("CreateContainer again after the rollback: %v", err)
					}
					cs = []*runtimeapi.Container{{Id: id}}
				}
				if len(cs) != 1 || f.containerState(t, cs[0].Id).State != runtimeapi.ContainerState_CONTAINER_CREATED {
					t.Fatalf("containers after the restart: %v, want one CREATED", cs)
				}
				if err := f.n.Runtime.StartContainer(f.ctx, cs[0].Id); err != nil {
					t.Fatalf("start the container after the restart: %v", err)
				}
				f.expectExecWorks(t, cs[0].Id)
			},
		}
	}
	startCtr := func(running bool) crashScenario {
		return crashScenario{
			setup: withCreated,
			call:  func(f *faultEnv, o *crashObjects) error { return f.n.Runtime.StartContainer(f.ctx, o.ctr) },
			after: func(t *testing.T, f *faultEnv, o *crashObjects) {
				st := f.containerState(t, o.ctr)
				if !running {
					if st.State != runtimeapi.ContainerState_CONTAINER_CREATED {
						t.Fatalf("container after a crash before start: %v, want CREATED", st.State)
					}
					if err := f.n.Runtime.StartContainer(f.ctx, o.ctr); err != nil {
						t.Fatal(err)
					}
				} else if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING || st.StartedAt == 0 {
					t.Fatalf("container started before the crash: %v started %d, want RUNNING", st.State, st.StartedAt)
				}
				f.expectExecWorks(t, o.ctr)
			},
		}
	}
	stopCtr := func(timeout int64, wantState runtimeapi.ContainerState, wantCode int32) crashScenario {
		return crashScenario{
			setup: withRunning,
			call: func(f *faultEnv, o *crashObjects) error {
				return f.n.Runtime.StopContainer(f.ctx, o.ctr, timeout)
			},
			after: func(t *testing.T, f *faultEnv, o *crashObjects) {
				var st *runtimeapi.ContainerStatus
				if wantState == runtimeapi.ContainerState_CONTAINER_EXITED {
					st = f.waitExited(t, o.ctr)
				} else {
					st = f.containerState(t, o.ctr)
				}
				if st.State != wantState || st.ExitCode != wantCode {
					t.Fatalf("container after a crash in StopContainer: %v code %d, want %v code %d", st.State, st.ExitCode, wantState, wantCode)
				}
				if wantState == runtimeapi.ContainerState_CONTAINER_EXITED && (st.FinishedAt < st.StartedAt || st.FinishedAt == 0) {
					t.Errorf("exit time %d not after start %d", st.FinishedAt, st.StartedAt)
				}
				if err := f.n.Runtime.StopContainer(f.ctx, o.ctr, 0); err != nil {
					t.Fatalf("StopContainer after the restart: %v", err)
				}
			},
		}
	}
	onRunning := func(call func(f *faultEnv, o *crashObjects) error) crashScenario {
		return crashScenario{setup: withRunning, call: call}
	}
	pullImage := func(i int) crashScenario {
		ref := fmt.Sprintf("docker.io/library/crash-%d:latest", i)
		return crashScenario{
			setup: func(t *testing.T, f *faultEnv) *crashObjects { return &crashObjects{image: ref} },
			call: func(f *faultEnv, o *crashObjects) error {
				_, err := f.n.Image.PullImage(f.ctx, &runtimeapi.ImageSpec{Image: o.image}, nil, nil)
				return err
			},
		}
	}
	return map[string]crashScenario{
		faultinject.SandboxIntent:        runPod(false, false),
		faultinject.SandboxPinned:        runPod(false, false),
		faultinject.SandboxPodInit:       runPod(true, false),
		faultinject.SandboxNetworkIntent: runPod(true, false),
		faultinject.SandboxNetworkAdded:  runPod(false, false),
		faultinject.SandboxReady:         runPod(true, true),

		faultinject.ContainerIntent:         createCtr(false),
		faultinject.ContainerRootfs:         createCtr(false),
		faultinject.ContainerBundle:         createCtr(false),
		faultinject.ContainerRuntimeCreated: createCtr(false),
		faultinject.ContainerCreated:        createCtr(true),
		faultinject.ContainerStartIntent:    startCtr(false),
		faultinject.ContainerStarted:        startCtr(true),
		// Running recorded in the index only (a deferred write): recovery asks runc.
		faultinject.ContainerStartRecorded: startCtr(true),
		// sleep as PID 1 ignores SIGTERM: it still runs after a crash right after the stop signal.
		faultinject.ContainerStopSignalled: stopCtr(30, runtimeapi.ContainerState_CONTAINER_RUNNING, 0),
		// Killed while noded was down: the restarted noded reads the real exit code from conmon.
		faultinject.ContainerStopKilled: stopCtr(0, runtimeapi.ContainerState_CONTAINER_EXITED, 137),
		// The exit recorded in the index only (a deferred write): recovery reads conmon's exit file again.
		faultinject.ContainerExitRecorded: stopCtr(0, runtimeapi.ContainerState_CONTAINER_EXITED, 137),

		faultinject.SandboxStopContainers: onRunning(func(f *faultEnv, o *crashObjects) error { return f.n.Runtime.StopPodSandbox(f.ctx, o.pod) }),
		faultinject.SandboxStopNetwork:    onRunning(func(f *faultEnv, o *crashObjects) error { return f.n.Runtime.StopPodSandbox(f.ctx, o.pod) }),

		faultinject.ContainerRemoveIntent:  onRunning(func(f *faultEnv, o *crashObjects) error { return f.n.Runtime.RemoveContainer(f.ctx, o.ctr) }),
		faultinject.ContainerRemoveRuntime: onRunning(func(f *faultEnv, o *crashObjects) error { return f.n.Runtime.RemoveContainer(f.ctx, o.ctr) }),
		faultinject.ContainerRemoveCleaned: onRunning(func(f *faultEnv, o *crashObjects) error { return f.n.Runtime.RemoveContainer(f.ctx, o.ctr) }),

		// The containers' record deletes are deferred writes the sandbox's delete would carry: a crash here may
		// lose them. What kubelet sees must still be consistent: the pod listed (its network is still up) and its
		// container, if listed, exited; the pod's removal then works again (removeAllPods).
		faultinject.SandboxRemoveContainers: {
			setup: withRunning,
			call:  func(f *faultEnv, o *crashObjects) error { return f.n.Runtime.RemovePodSandbox(f.ctx, o.pod) },
			after: func(t *testing.T, f *faultEnv, o *crashObjects) {
				f.expectReadyPods(t, 1)
				cs, err := f.n.Runtime.ListContainers(f.ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range cs {
					if c.State != runtimeapi.ContainerState_CONTAINER_EXITED {
						t.Errorf("container %s of the pod being removed is %v after the restart, want EXITED", c.Id, c.State)
					}
				}
			},
		},
		faultinject.SandboxRemoveNetwork:  onRunning(func(f *faultEnv, o *crashObjects) error { return f.n.Runtime.RemovePodSandbox(f.ctx, o.pod) }),
		faultinject.SandboxRemoveTornDown: onRunning(func(f *faultEnv, o *crashObjects) error { return f.n.Runtime.RemovePodSandbox(f.ctx, o.pod) }),

		faultinject.ImageDownload:       pullImage(0),
		faultinject.ImageUnpack:         pullImage(1),
		faultinject.ImageLayerCommitted: pullImage(2),
		faultinject.ImageRecord:         pullImage(3),
	}
}

// TestCrashAtEveryKillPoint kills noded (SIGKILL, by its faultinject hook) at every named point of
// RunPodSandbox, CreateContainer, StartContainer, StopContainer, StopPodSandbox, RemoveContainer,
// RemovePodSandbox and PullImage, restarts it and checks that every object is either fully there (and works)
// or gone, that every pod stops and removes, that nothing leaked (mounts, pins, runtime containers, conmon and
// container processes, cgroups, IPs, iptables rules, conmon files), and that the image store is consistent: a
// pull cut short leaves no image, the pull works again, and removing the image gives back every snapshot.
func TestCrashAtEveryKillPoint(t *testing.T) {
	extra := map[string]v1.Image{}
	for i := 0; i < 4; i++ {
		extra[fmt.Sprintf("library/crash-%d:latest", i)] = randomImage(t)
	}
	f := newFaultEnv(t, 40, "", extra)
	f.checkLeakDetector(t)
	scenarios := crashScenarios()
	covered := 0
	for _, point := range faultinject.Points {
		sc, ok := scenarios[point]
		if !ok {
			t.Errorf("kill point %s has no scenario", point)
			continue
		}
		ok = t.Run(point, func(t *testing.T) {
			snapsBefore := snapshotDirs(t, f.n)
			o := sc.setup(t, f)
			f.arm(t, point)
			_ = sc.call(f, o) // noded dies in it (or, at the last points, right after answering)
			f.crashAndRestart(t, point)
			if sc.after != nil {
				sc.after(t, f, o)
			}
			if o.image != "" {
				f.checkImageAfterCrash(t, o.image, snapsBefore)
			}
			f.removeAllPods(t)
			f.assertNoLeaksFull(t)
		})
		if ok {
			covered++
		}
		if t.Failed() {
			// Later points would report this point's leftovers.
			break
		}
	}
	t.Logf("kill points covered: %d of %d", covered, len(faultinject.Points))
}

// checkImageAfterCrash: a pull cut short left no image; pulling again works and gives a full image; removing
// it leaves the snapshots as they were before the pull and no partial download behind.
func (f *faultEnv) checkImageAfterCrash(t *testing.T, ref string, snapsBefore int) {
	t.Helper()
	st, err := f.n.Image.ImageStatus(f.ctx, &runtimeapi.ImageSpec{Image: ref}, false)
	if err != nil {
		t.Fatalf("ImageStatus after the crash: %v", err)
	}
	if st.GetImage() != nil {
		t.Errorf("a pull cut short left image %v", st.GetImage().GetRepoTags())
	}
	if _, err := f.n.Image.PullImage(f.ctx, &runtimeapi.ImageSpec{Image: ref}, nil, nil); err != nil {
		t.Fatalf("pull again after the crash: %v", err)
	}
	st, err = f.n.Image.ImageStatus(f.ctx, &runtimeapi.ImageSpec{Image: ref}, false)
	if err != nil || st.GetImage() == nil || st.GetImage().GetSize() == 0 {
		t.Fatalf("ImageStatus after the second pull: %v %v", st, err)
	}
	if snapshotDirs(t, f.n) != snapsBefore+2 {
		t.Errorf("snapshots after the pull: %d, want %d (+2 layers)", snapshotDirs(t, f.n), snapsBefore+2)
	}
	if err := f.n.Image.RemoveImage(f.ctx, &runtimeapi.ImageSpec{Image: ref}); err != nil {
		t.Fatal(err)
	}
	if got := snapshotDirs(t, f.n); got != snapsBefore {
		t.Errorf("snapshots after removing the image: %d, want %d as before the pull", got, snapsBefore)
	}
	if entries, _ := os.ReadDir(filepath.Join(f.n.Root, "images", "content", "ingest")); len(entries) > 0 {
		t.Errorf("partial downloads left: %d", len(entries))
	}
}

func snapshotDirs(t *testing.T, n *framework.Noded) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.Root, "snapshots", "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// checkLeakDetector makes sure the leak list sees every kind of resource of a live pod with a running container:
// a detector that sees nothing would pass every crash.
func (f *faultEnv) checkLeakDetector(t *testing.T) {
	t.Helper()
	o := withRunning(t, f)
	got := strings.Join(f.leaks(t), "\n")
	for _, kind := range []string{"mount ", "pods/", "ns/", "containers/", "persist/", "runtime container ", "process ",
		"cgroup ", "IP allocation ", "iptables "} {
		if !strings.Contains(got, kind) {
			t.Errorf("the leak detector does not see the %q of a live pod:\n%s", kind, got)
		}
	}
	if err := f.n.Runtime.RemovePodSandbox(f.ctx, o.pod); err != nil {
		t.Fatal(err)
	}
	f.assertNoLeaksFull(t)
}
