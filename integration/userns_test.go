package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// usernsHostID is where the test pods' IDs start on the host: far from any real user.
const usernsHostID = 1 << 20

func usernsOptions(containerID, hostID, length uint32) *runtimeapi.UserNamespace {
	m := []*runtimeapi.IDMapping{{ContainerId: containerID, HostId: hostID, Length: length}}
	return &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}
}

// hostPid returns the host PID of a running container from its verbose status.
func (e *podEnv) hostPid(t *testing.T, id string) int {
	t.Helper()
	resp, err := e.n.Runtime.ContainerStatus(e.ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.Pid == 0 {
		t.Fatalf("no pid in verbose status %q: %v", resp.Info["info"], err)
	}
	return info.Pid
}

func TestUserNamespacePod(t *testing.T) {
	e := newPodEnv(t, 30, nil)

	for _, pid := range []runtimeapi.NamespaceMode{runtimeapi.NamespaceMode_CONTAINER, runtimeapi.NamespaceMode_POD} {
		t.Run("pid "+pid.String(), func(t *testing.T) {
			podCfg := e.podConfig(t, "userns-"+strings.ToLower(pid.String()))
			podCfg.Linux.SecurityContext.NamespaceOptions.Pid = pid
			podCfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOptions(0, usernsHostID, 65536)
			podID := e.runPod(t, podCfg)
			t.Cleanup(func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, podID) })
			st, err := e.n.Runtime.PodSandboxStatus(e.ctx, podID, false)
			if err != nil {
				t.Fatal(err)
			}
			if ip := st.Status.GetNetwork().GetIp(); !strings.HasPrefix(ip, e.net.Prefix()) {
				t.Errorf("pod IP %q not on the test subnet: CNI did not set up the user namespace's netns", ip)
			}

			// Root in the container is the mapped host ID; image files (root's on disk) are root's inside, the
			// rootfs is writable by that root, /proc and /sys are mounted and the pod's hostname is set.
			ctr := e.createContainer(t, podID, podCfg, "main", "sh", "-c",
				"cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c 'root %u:%g' /; stat -c 'passwd %u:%g' /etc/passwd; "+
					"touch /created && echo touched; hostname; ls /sys/class/net | tr '\\n' ' '; echo; sleep 1000")
			if err := e.n.Runtime.StartContainer(e.ctx, ctr); err != nil {
				t.Fatalf("StartContainer: %v", err)
			}
			wantLog := []string{
				fmt.Sprintf("F          0    %d      65536", usernsHostID), "F 0", "F root 0:0", "F passwd 0:0",
				"F touched", "F " + podCfg.Hostname, "eth0 lo",
			}
			var log string
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				b, _ := os.ReadFile(podCfg.LogDirectory + "/main.log")
				if log = string(b); strings.Contains(log, "eth0") {
					break
				}
			}
			for _, w := range wantLog {
				if !strings.Contains(log, w) {
					t.Errorf("log lacks %q:\n%s", w, log)
				}
			}
			// Seen from the host, the container's root is the mapped ID.
			procStatus, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.hostPid(t, ctr)))
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("Uid:\t%d\t%d", usernsHostID, usernsHostID); !strings.Contains(string(procStatus), want) {
				t.Errorf("host view of the container's uids lacks %q:\n%s", want, procStatus)
			}
			// Exec joins the same user namespace.
			out, _, err := e.n.Runtime.ExecSync(e.ctx, ctr, []string{"cat", "/proc/self/uid_map"}, 10*time.Second)
			if err != nil || !strings.Contains(string(out), fmt.Sprint(usernsHostID)) {
				t.Errorf("exec uid_map = %q, %v", out, err)
			}
			if pid == runtimeapi.NamespaceMode_CONTAINER {
				// After a restart of noded the pod is still ready and new containers still join its namespaces.
				e.n.Restart()
				if st, err := e.n.Runtime.PodSandboxStatus(e.ctx, podID, false); err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
					t.Fatalf("after restart: %v, %v", st, err)
				}
				second := e.createContainer(t, podID, podCfg, "second", "sleep", "1000")
				if err := e.n.Runtime.StartContainer(e.ctx, second); err != nil {
					t.Fatal(err)
				}
				a := e.exec(t, ctr, "sh", "-c", "readlink /proc/self/ns/user; readlink /proc/self/ns/net")
				if b := e.exec(t, second, "sh", "-c", "readlink /proc/self/ns/user; readlink /proc/self/ns/net"); a != b {
					t.Errorf("containers in different namespaces:\n%s\n%s", a, b)
				}
			}
			// A container that asks for other mappings than its pod's is refused.
			bad := &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "bad"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
				Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
					NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: usernsOptions(0, 2*usernsHostID, 65536)},
				}},
			}
			if _, err := e.n.Runtime.CreateContainer(e.ctx, podID, bad, podCfg); status.Code(err) != codes.InvalidArgument {
				t.Errorf("container with other mappings than the pod's: %v, want InvalidArgument", err)
			}
			if err := e.n.Runtime.StopPodSandbox(e.ctx, podID); err != nil {
				t.Fatal(err)
			}
			if err := e.n.Runtime.RemovePodSandbox(e.ctx, podID); err != nil {
				t.Fatal(err)
			}
			assertNoLeaks(t, e.n)
		})
	}

	t.Run("invalid", func(t *testing.T) {
		two := usernsOptions(0, usernsHostID, 65536)
		two.Uids = append(two.Uids, &runtimeapi.IDMapping{ContainerId: 65536, HostId: 2 * usernsHostID, Length: 65536})
		for _, tc := range []struct {
			name   string
			mutate func(*runtimeapi.NamespaceOption)
		}{
			{"two mappings", func(o *runtimeapi.NamespaceOption) { o.UsernsOptions = two }},
			{"root not mapped", func(o *runtimeapi.NamespaceOption) { o.UsernsOptions = usernsOptions(1, usernsHostID, 65536) }},
			{"overflow", func(o *runtimeapi.NamespaceOption) { o.UsernsOptions = usernsOptions(0, 1<<32-10, 65536) }},
			{"mode CONTAINER", func(o *runtimeapi.NamespaceOption) {
				o.UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}
			}},
			{"host network", func(o *runtimeapi.NamespaceOption) {
				o.UsernsOptions = usernsOptions(0, usernsHostID, 65536)
				o.Network = runtimeapi.NamespaceMode_NODE
			}},
		} {
			cfg := e.podConfig(t, "userns-bad")
			tc.mutate(cfg.Linux.SecurityContext.NamespaceOptions)
			if _, err := e.n.Runtime.RunPodSandbox(e.ctx, cfg, ""); status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: RunPodSandbox = %v, want InvalidArgument", tc.name, err)
			}
		}
		if pods, err := e.n.Runtime.ListPodSandbox(e.ctx, nil); err != nil || len(pods) != 0 {
			t.Errorf("pods left after refused requests: %v, %v", pods, err)
		}
		assertNoLeaks(t, e.n)
	})
}
