package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
)

// kubeletNS is the namespace of the test's static pods.
const kubeletNS = "noded-it"

type obj = map[string]any

func staticPod(name string, spec obj) obj {
	return obj{"apiVersion": "v1", "kind": "Pod", "metadata": obj{"name": name, "namespace": kubeletNS}, "spec": spec}
}

func busyboxContainer(name, script string) obj {
	return obj{"name": name, "image": "busybox", "imagePullPolicy": "IfNotPresent", "command": []string{"sh", "-c", script}}
}

// TestKubeletStandalone runs the real kubelet (v1.37.2, standalone: static pods from a dir, no API server) on
// a private noded and checks what kubelet does with the CRI: a pod on the CNI network whose readiness (HTTP) and
// liveness (exec) probes kubelet runs, with limits and an emptyDir shared by two containers; a host-network pod;
// a container that fails and is restarted by kubelet (with its termination message); init and sidecar
// containers, hooks and a restrictive security context; logs, exec and port-forward through kubelet's own API;
// /stats/summary; a kubelet restart that adopts the running pods; and, once the manifests are gone and kubelet
// stopped (leaving a pod running, as it does), nothing left on the host.
func TestKubeletStandalone(t *testing.T) {
	framework.RequireRoot(t)
	bin := framework.KubeletBinary(t)
	host := framework.Registry(t, map[string]v1.Image{"library/busybox:latest": framework.Busybox(t)})
	network := framework.NewNetwork(t, 70)
	n := framework.Start(t, framework.Options{
		CNIConfDir: network.ConfDir,
		Mirrors:    map[string]string{"docker.io": "http://" + host},
	})
	k := framework.StartKubelet(t, n, framework.KubeletOptions{Binary: bin})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	web := k.PodName("web")
	k.WriteStaticPod("web", staticPod("web", obj{
		"terminationGracePeriodSeconds": 2,
		"volumes":                       []obj{{"name": "shared", "emptyDir": obj{}}},
		"containers": []obj{
			merge(busyboxContainer("server", "exec httpd -f -p 8080 -h /shared"), obj{
				"ports": []obj{{"containerPort": 8080}},
				"readinessProbe": obj{"httpGet": obj{"path": "/index.html", "port": 8080},
					"periodSeconds": 1, "failureThreshold": 1},
				"livenessProbe": obj{"exec": obj{"command": []string{"sh", "-c", "test ! -e /tmp/unhealthy"}},
					"periodSeconds": 1, "failureThreshold": 1},
				"resources": obj{
					"requests": obj{"cpu": "100m", "memory": "32Mi"},
					"limits":   obj{"cpu": "500m", "memory": "64Mi"},
				},
				"volumeMounts": []obj{{"name": "shared", "mountPath": "/shared"}},
			}),
			merge(busyboxContainer("writer",
				"echo hello-from-writer > /shared/index.html && echo writer-started && exec sleep 100000"), obj{
				"resources":    obj{"limits": obj{"cpu": "200m", "memory": "32Mi"}},
				"volumeMounts": []obj{{"name": "shared", "mountPath": "/shared"}},
			}),
		},
	}))
	hostnet := k.PodName("hostnet")
	k.WriteStaticPod("hostnet", staticPod("hostnet", obj{
		"hostNetwork":                   true,
		"terminationGracePeriodSeconds": 2,
		"containers":                    []obj{busyboxContainer("main", "echo hostnet-up && exec sleep 100000")},
	}))
	// Fails its first run, then runs on: the emptyDir outlives the container, so the second run sees the mark.
	restart := k.PodName("restart")
	k.WriteStaticPod("restart", staticPod("restart", obj{
		"restartPolicy":                 "OnFailure",
		"terminationGracePeriodSeconds": 2,
		"volumes":                       []obj{{"name": "state", "emptyDir": obj{}}},
		"containers": []obj{merge(busyboxContainer("flaky",
			"if [ -e /state/ran ]; then echo second-run; exec sleep 100000; fi; touch /state/ran; echo first-run; echo first-run-failed > /dev/termination-log; exit 3"),
			obj{"volumeMounts": []obj{{"name": "state", "mountPath": "/state"}}})},
	}))

	// An init container, a sidecar (an init container that keeps running) whose startup probe holds the main
	// container back, hooks, a downward API variable, a subPath mount, a restrictive security context and a
	// shared PID namespace.
	lifecycle := k.PodName("lifecycle")
	shared := []obj{{"name": "shared", "mountPath": "/shared"}}
	k.WriteStaticPod("lifecycle", staticPod("lifecycle", obj{
		"terminationGracePeriodSeconds": 2,
		// One PID namespace for the pod: noded's pod init is its PID 1, and kubelet's teardown stops it.
		"shareProcessNamespace": true,
		"securityContext":       obj{"fsGroup": 2000, "supplementalGroups": []int{3000}},
		"volumes":               []obj{{"name": "shared", "emptyDir": obj{}}},
		"initContainers": []obj{
			merge(busyboxContainer("init", "echo from-init > /shared/init"), obj{"volumeMounts": shared}),
			merge(busyboxContainer("sidecar", "echo from-sidecar > /shared/sidecar && exec sleep 100000"), obj{
				"restartPolicy": "Always",
				"startupProbe":  obj{"exec": obj{"command": []string{"test", "-e", "/shared/sidecar"}}, "periodSeconds": 1},
				"volumeMounts":  shared,
			}),
		},
		"containers": []obj{merge(busyboxContainer("main", "cat /shared/init /shared/sidecar && id && exec sleep 100000"), obj{
			"env": []obj{{"name": "POD_NAME", "valueFrom": obj{"fieldRef": obj{"fieldPath": "metadata.name"}}}},
			"lifecycle": obj{
				"postStart": obj{"exec": obj{"command": []string{"sh", "-c", "echo from-poststart > /shared/poststart"}}},
				"preStop":   obj{"exec": obj{"command": []string{"true"}}},
			},
			"securityContext": obj{"runAsUser": 1000, "runAsGroup": 1000, "readOnlyRootFilesystem": true,
				"allowPrivilegeEscalation": false, "capabilities": obj{"drop": []string{"ALL"}}},
			"volumeMounts": append([]obj{{"name": "shared", "mountPath": "/sub", "subPath": "subdir"}}, shared...),
		})},
	}))

	ready := func(p *framework.KubeletPod) bool { return p.Condition("Ready") == "True" }
	webPod := k.WaitPod(ctx, kubeletNS, web, 3*time.Minute, "ready", ready)

	t.Run("CNINetworkAndReadiness", func(t *testing.T) {
		if !strings.HasPrefix(webPod.Status.PodIP, network.Prefix()) {
			t.Errorf("pod IP %q is not on the test network %s", webPod.Status.PodIP, network.Subnet)
		}
		// Readiness follows the HTTP probe: without the page the writer put into the shared emptyDir, the pod
		// is not ready; with it back, it is again.
		if _, err := k.Run(ctx, kubeletNS, web, "writer", "rm", "/shared/index.html"); err != nil {
			t.Fatal(err)
		}
		k.WaitPod(ctx, kubeletNS, web, time.Minute, "not ready without the page", func(p *framework.KubeletPod) bool {
			return p.Condition("Ready") == "False"
		})
		if _, err := k.Run(ctx, kubeletNS, web, "writer", "cp", "/proc/self/cmdline", "/shared/index.html"); err != nil {
			t.Fatal(err)
		}
		k.WaitPod(ctx, kubeletNS, web, time.Minute, "ready again", ready)
	})

	t.Run("EmptyDirShared", func(t *testing.T) {
		out, err := k.Run(ctx, kubeletNS, web, "writer", "touch", "/shared/from-writer")
		if err != nil {
			t.Fatalf("touch: %v %s", err, out)
		}
		out, err = k.Run(ctx, kubeletNS, web, "server", "ls", "/shared")
		if err != nil || !strings.Contains(out, "from-writer") {
			t.Errorf("server does not see the writer's file in the emptyDir: %q %v", out, err)
		}
	})

	t.Run("Limits", func(t *testing.T) {
		p := k.WaitPod(ctx, kubeletNS, web, time.Minute, "ready", ready)
		id := containerID(t, p, "server")
		want := map[string]string{"memory/memory.limit_in_bytes": "67108864", "cpu/cpu.cfs_quota_us": "50000"}
		for file, v := range want {
			paths, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", filepath.Dir(file), k.CgroupRoot,
				"kubepods", "*", "pod"+p.Metadata.UID, id, filepath.Base(file)))
			if len(paths) != 1 {
				t.Errorf("%s of container %s not found below %s/kubepods", file, id, k.CgroupRoot)
				continue
			}
			got, err := os.ReadFile(paths[0])
			if err != nil || strings.TrimSpace(string(got)) != v {
				t.Errorf("%s = %q (%v), want %s", paths[0], got, err, v)
			}
		}
		st, err := n.Runtime.ContainerStatus(ctx, id, false)
		if err != nil {
			t.Fatal(err)
		}
		if r := st.GetStatus().GetResources().GetLinux(); r.GetMemoryLimitInBytes() != 64<<20 || r.GetCpuQuota() != 50000 {
			t.Errorf("ContainerStatus resources = %v", r)
		}
	})

	t.Run("LivenessExecProbe", func(t *testing.T) {
		before := k.WaitPod(ctx, kubeletNS, web, time.Minute, "ready", ready).Container("server").RestartCount
		if _, err := k.Run(ctx, kubeletNS, web, "server", "touch", "/tmp/unhealthy"); err != nil {
			t.Fatal(err)
		}
		p := k.WaitPod(ctx, kubeletNS, web, 2*time.Minute, "restarted by the liveness probe", func(p *framework.KubeletPod) bool {
			c := p.Container("server")
			return c != nil && c.RestartCount > before && c.State.Running != nil
		})
		if c := p.Container("server"); c.LastState.Terminated == nil {
			t.Errorf("server restarted without a last terminated state: %+v", c)
		}
		// The new container is a fresh one: the mark is gone, the probe passes and the pod gets ready again.
		k.WaitPod(ctx, kubeletNS, web, time.Minute, "ready after the restart", ready)
	})

	t.Run("HostNetwork", func(t *testing.T) {
		k.WaitPod(ctx, kubeletNS, hostnet, 3*time.Minute, "ready", ready)
		out, err := k.Run(ctx, kubeletNS, hostnet, "main", "readlink", "/proc/self/ns/net")
		hostNS, _ := os.Readlink("/proc/self/ns/net")
		if err != nil || strings.TrimSpace(out) != hostNS {
			t.Errorf("host-network pod is in net ns %q (%v), host is %q", out, err, hostNS)
		}
		logs, err := k.ContainerLogs(ctx, kubeletNS, hostnet, "main", "")
		if err != nil || !strings.Contains(logs, "hostnet-up") {
			t.Errorf("logs = %q, %v", logs, err)
		}
	})

	t.Run("RestartedByKubelet", func(t *testing.T) {
		p := k.WaitPod(ctx, kubeletNS, restart, 3*time.Minute, "restarted and running", func(p *framework.KubeletPod) bool {
			c := p.Container("flaky")
			return c != nil && c.RestartCount >= 1 && c.State.Running != nil
		})
		c := p.Container("flaky")
		if c.RestartCount != 1 {
			t.Errorf("restartCount = %d, want 1", c.RestartCount)
		}
		// The termination message comes from the file kubelet mounted at /dev/termination-log.
		if lt := c.LastState.Terminated; lt == nil || lt.ExitCode != 3 || lt.Reason != "Error" || strings.TrimSpace(lt.Message) != "first-run-failed" {
			t.Errorf("last state = %+v, want terminated with exit code 3, reason Error, message first-run-failed", lt)
		}
		if logs, err := k.ContainerLogs(ctx, kubeletNS, restart, "flaky", ""); err != nil || strings.TrimSpace(logs) != "second-run" {
			t.Errorf("current logs = %q, %v", logs, err)
		}
		if logs, err := k.ContainerLogs(ctx, kubeletNS, restart, "flaky", "previous=true"); err != nil || strings.TrimSpace(logs) != "first-run" {
			t.Errorf("previous logs = %q, %v", logs, err)
		}
		// Both attempts went through the CRI as kubelet numbers them.
		cs, err := n.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{
			"io.kubernetes.pod.name": restart, "io.kubernetes.container.name": "flaky"}})
		if err != nil {
			t.Fatal(err)
		}
		attempts := map[uint32]bool{}
		for _, c := range cs {
			attempts[c.GetMetadata().GetAttempt()] = true
		}
		if !attempts[0] || !attempts[1] {
			t.Errorf("CRI containers of flaky have attempts %v, want 0 and 1", attempts)
		}
	})

	t.Run("LogsExecAndPortForwardThroughKubelet", func(t *testing.T) {
		logs, err := k.ContainerLogs(ctx, kubeletNS, web, "writer", "")
		if err != nil || strings.TrimSpace(logs) != "writer-started" {
			t.Errorf("writer logs = %q, %v", logs, err)
		}
		logs, err = k.ContainerLogs(ctx, kubeletNS, web, "writer", "timestamps=true")
		if err != nil || !strings.HasSuffix(strings.TrimSpace(logs), " writer-started") || !strings.Contains(logs, "T") {
			t.Errorf("writer logs with timestamps = %q, %v", logs, err)
		}
		out, errOut, code, err := k.Exec(ctx, kubeletNS, web, "server", "sh", "-c", "cat /shared/from-writer /proc/self/cmdline >/dev/null && echo out-$HOSTNAME && echo err >&2")
		if err != nil || code != 0 || strings.TrimSpace(out) != "out-web-"+k.NodeName || strings.TrimSpace(errOut) != "err" {
			t.Errorf("exec = stdout %q stderr %q code %d err %v", out, errOut, code, err)
		}
		if _, _, code, err := k.Exec(ctx, kubeletNS, web, "server", "sh", "-c", "exit 7"); err != nil || code != 7 {
			t.Errorf("exec exit 7 = code %d, err %v", code, err)
		}
		// Port-forward reaches the pod's httpd and the page the writer put into the emptyDir.
		reply, err := k.PortForward(ctx, kubeletNS, web, 8080, []byte("GET /from-writer HTTP/1.0\r\n\r\n"))
		if err != nil || !strings.HasPrefix(string(reply), "HTTP/1.") || !strings.Contains(string(reply), " 200 ") {
			t.Errorf("port-forward to 8080: %q, %v", reply, err)
		}
	})

	t.Run("InitSidecarHooksSecurityContext", func(t *testing.T) {
		k.WaitPod(ctx, kubeletNS, lifecycle, 3*time.Minute, "ready", ready)
		logs, err := k.ContainerLogs(ctx, kubeletNS, lifecycle, "main", "")
		if want := "from-init\nfrom-sidecar\nuid=1000 gid=1000 groups=1000,2000,3000\n"; err != nil || logs != want {
			t.Errorf("main logs = %q (%v), want %q", logs, err, want)
		}
		out, errOut, code, err := k.Exec(ctx, kubeletNS, lifecycle, "main", "sh", "-c",
			"cat /shared/poststart; echo $POD_NAME; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "+
				"touch /rootfs-write 2>/dev/null || echo read-only; stat -c %g /sub; touch /sub/ok && echo sub-writable; "+
				"ps -o comm | grep -c '^sleep$'")
		// Two sleeps: the sidecar's is seen through the pod's shared PID namespace.
		want := "from-poststart\n" + lifecycle + "\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nread-only\n2000\nsub-writable\n2\n"
		if err != nil || code != 0 || out != want {
			t.Errorf("exec = %q (stderr %q, code %d, %v), want %q", out, errOut, code, err, want)
		}
	})

	t.Run("StatsSummary", func(t *testing.T) {
		// kubelet's summary takes container CPU, memory and writable-layer figures from ListContainerStats.
		type fs struct {
			UsedBytes *uint64 `json:"usedBytes"`
		}
		type summary struct {
			Pods []struct {
				PodRef struct {
					Name string `json:"name"`
				} `json:"podRef"`
				Containers []struct {
					Name string `json:"name"`
					CPU  struct {
						UsageCoreNanoSeconds *uint64 `json:"usageCoreNanoSeconds"`
					} `json:"cpu"`
					Memory struct {
						WorkingSetBytes *uint64 `json:"workingSetBytes"`
					} `json:"memory"`
					Rootfs fs `json:"rootfs"`
					Logs   fs `json:"logs"`
				} `json:"containers"`
			} `json:"pods"`
		}
		var last string
		deadline := time.Now().Add(2 * time.Minute)
		for {
			b, err := k.Get(ctx, "/stats/summary")
			var sum summary
			if err == nil {
				err = json.Unmarshal(b, &sum)
			}
			good := 0
			for _, p := range sum.Pods {
				if p.PodRef.Name != web {
					continue
				}
				for _, c := range p.Containers {
					if c.CPU.UsageCoreNanoSeconds != nil && *c.CPU.UsageCoreNanoSeconds > 0 &&
						c.Memory.WorkingSetBytes != nil && *c.Memory.WorkingSetBytes > 0 &&
						c.Rootfs.UsedBytes != nil && c.Logs.UsedBytes != nil {
						good++
					}
				}
			}
			if good == 2 {
				break
			}
			last = fmt.Sprintf("%s (%v)", b, err)
			if time.Now().After(deadline) {
				t.Fatalf("/stats/summary has no CPU, memory, rootfs and logs figures for both containers of %s: %s", web, last)
			}
			time.Sleep(time.Second)
		}
	})

	t.Run("KubeletRestartKeepsPods", func(t *testing.T) {
		// A restarted kubelet finds its pods through the CRI (sandboxes, containers, their labels and
		// annotations) and adopts them: no container is started again, no restart is counted.
		type seen struct {
			id       string
			restarts int
		}
		snapshot := func() map[string]seen {
			out := map[string]seen{}
			for _, name := range []string{web, hostnet, restart, lifecycle} {
				p := k.WaitPod(ctx, kubeletNS, name, 2*time.Minute, "ready", ready)
				for _, c := range p.Status.ContainerStatuses {
					out[name+"/"+c.Name] = seen{c.ContainerID, c.RestartCount}
				}
			}
			return out
		}
		before := snapshot()
		if started, err := k.Metric(ctx, "kubelet_started_containers_total"); err != nil || started < 5 {
			t.Fatalf("kubelet_started_containers_total = %v (%v) before the restart, want at least 5", started, err)
		}
		cs, err := n.Runtime.ListContainers(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		k.Restart()
		// Pod syncs have run to their end (at least as many as there are pods; kubelet coalesces a pod's pending
		// updates, so which pod each was is not known): what kubelet decided to do with the containers it found
		// is done, or at least under way and then seen by the checks below.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			synced, err := k.Metric(ctx, "kubelet_pod_worker_duration_seconds_count")
			if err == nil && synced >= 4 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("restarted kubelet completed %v pod syncs (%v), want at least 4", synced, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
		after := snapshot()
		if started, err := k.Metric(ctx, "kubelet_started_containers_total"); err != nil || started != 0 {
			t.Errorf("restarted kubelet started %v containers (%v), want none", started, err)
		}
		if cs2, err := n.Runtime.ListContainers(ctx, nil); err != nil || len(cs2) != len(cs) {
			t.Errorf("noded has %d containers after kubelet restarted, %d before (%v)", len(cs2), len(cs), err)
		}
		if len(before) != 5 {
			t.Fatalf("containers before the restart: %v", before)
		}
		for c, b := range before {
			if a := after[c]; a != b {
				t.Errorf("%s: container %s with %d restarts before kubelet restarted, %s with %d after", c, b.id, b.restarts, a.id, a.restarts)
			}
		}
	})

	// Teardown as on a node: two manifests go and kubelet stops their pods; then kubelet stops and, by design,
	// leaves the host-network pod running, its root dir mounted and its cgroups in place. The cleanup must
	// leave nothing behind.
	k.RemoveStaticPod("web")
	k.RemoveStaticPod("restart")
	k.RemoveStaticPod("lifecycle")
	readyPods := func() []*runtimeapi.PodSandbox {
		t.Helper()
		sandboxes, err := n.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
			State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
		if err != nil {
			t.Fatal(err)
		}
		return sandboxes
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pods, err := k.Pods(ctx)
		ready := readyPods()
		if err == nil && len(pods) == 1 && len(ready) == 1 && ready[0].GetMetadata().GetName() == hostnet {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubelet did not stop the pods of removed manifests: %d pods (%v), %d ready sandboxes",
				len(pods), err, len(ready))
		}
		time.Sleep(250 * time.Millisecond)
	}
	k.Stop()
	if ready := readyPods(); len(ready) != 1 {
		t.Errorf("%d ready sandboxes after kubelet stopped, want the host-network pod left running", len(ready))
	}
	// What the cleanup must undo is there, so the check below can fail.
	left := strings.Join(k.Leftovers(), "\n")
	for _, want := range []string{"mount " + k.RootDir + "\n", "cgroup /sys/fs/cgroup/memory" + k.CgroupRoot} {
		if !strings.Contains(left+"\n", want) {
			t.Errorf("before cleanup, leftovers do not show %q:\n%s", want, left)
		}
	}
	for _, err := range k.Cleanup() {
		t.Errorf("kubelet cleanup: %v", err)
	}
	if left := k.Leftovers(); len(left) > 0 {
		t.Errorf("left behind after kubelet cleanup:\n  %s", strings.Join(left, "\n  "))
	}
	if sandboxes, err := n.Runtime.ListPodSandbox(ctx, nil); err != nil || len(sandboxes) != 0 {
		t.Errorf("sandboxes left after kubelet cleanup: %v %v", sandboxes, err)
	}
	assertNoLeaks(t, n)
}

func merge(a, b obj) obj {
	for k, v := range b {
		a[k] = v
	}
	return a
}

// containerID returns the runtime ID of the pod's container name (kubelet reports "<runtime>://<id>").
func containerID(t *testing.T, p *framework.KubeletPod, name string) string {
	t.Helper()
	c := p.Container(name)
	if c == nil || c.ContainerID == "" {
		t.Fatalf("no container ID for %s in %+v", name, p.Status)
	}
	_, id, ok := strings.Cut(c.ContainerID, "://")
	if !ok {
		t.Fatalf("container ID %q has no runtime prefix", c.ContainerID)
	}
	return id
}
