// Package apparmor tests noded's default AppArmor profile on a kernel with AppArmor enabled: the real noded,
// runc and conmon, driven through the CRI. It skips where AppArmor is not enabled, which includes this
// machine and the standard test guest (its UML kernel gives the major-LSM slot to SELinux); it runs in a guest
// booted with lsm=capability,yama,apparmor (hack/guest-test.sh with NODEVM_RUN pointing at such a run script).
//
// apparmor_parser: the one on PATH, else the directory NODED_TEST_APPARMOR_DIR (hack/guest-test.sh fills it
// with the host's parser, its ABI files and a wrapper passing -I) is put first on noded's PATH.
package apparmor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/apparmor"
	"github.com/noded/noded/integration/framework"
	"github.com/noded/noded/oci"
)

// DirEnv names a directory holding an apparmor_parser to put first on noded's PATH.
const DirEnv = "NODED_TEST_APPARMOR_DIR"

// RuncEnv names the runc binary noded uses in the guest (as in the cgroup guest tests).
const RuncEnv = "NODED_TEST_RUNC"

type env struct {
	n   *framework.Noded
	ctx context.Context
}

func start(t *testing.T, netIdx int, path string) *env {
	t.Helper()
	host := framework.Registry(t, map[string]v1.Image{"library/busybox:latest": framework.Busybox(t)})
	network := framework.NewNetwork(t, netIdx)
	var config string
	if runc := os.Getenv(RuncEnv); runc != "" {
		config = fmt.Sprintf("[runtimes.runc]\npath = %q\n", runc)
	}
	n := framework.Start(t, framework.Options{
		CNIConfDir: network.ConfDir, Config: config, Env: []string{"PATH=" + path},
		Mirrors: map[string]string{"docker.io": "http://" + host},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	if _, err := n.Image.PullImage(ctx, &runtimeapi.ImageSpec{Image: "busybox"}, nil, nil); err != nil {
		t.Fatalf("pull busybox: %v", err)
	}
	return &env{n: n, ctx: ctx}
}

func requireAppArmor(t *testing.T) {
	t.Helper()
	framework.RequireRoot(t)
	if !oci.AppArmorEnabled() {
		t.Skip("AppArmor is not enabled in this kernel (boot the guest with lsm=capability,yama,apparmor)")
	}
}

// parserPath returns a PATH for noded on which apparmor_parser is found, or "" when there is none.
func parserPath() string {
	path := os.Getenv("PATH")
	if dir := os.Getenv(DirEnv); dir != "" {
		path = dir + ":" + path
	}
	for _, d := range append(filepath.SplitList(path), "/sbin", "/usr/sbin") {
		if fi, err := os.Stat(filepath.Join(d, "apparmor_parser")); err == nil && fi.Mode().IsRegular() {
			return path
		}
	}
	return ""
}

// unload removes the profile written at file from the kernel (with the parser found on path), if loaded.
func unload(t *testing.T, path, file string) {
	t.Helper()
	if ok, err := apparmor.IsLoaded(apparmor.ProfilesFile, apparmor.DefaultProfile); err != nil || !ok {
		return
	}
	cmd := exec.Command("sh", "-c", `PATH="$1" exec apparmor_parser -R "$2"`, "sh", path, file)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("unload the profile: %v: %s", err, out)
	}
	if ok, err := apparmor.IsLoaded(apparmor.ProfilesFile, apparmor.DefaultProfile); err != nil || ok {
		t.Fatalf("profile still loaded after apparmor_parser -R: %v %v", ok, err)
	}
}

func (e *env) pod(t *testing.T, name string) (string, *runtimeapi.PodSandboxConfig) {
	t.Helper()
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "it", Uid: name + "-uid"},
		Hostname:     name,
		LogDirectory: filepath.Join(t.TempDir(), "logs"),
		// The guest has no /etc/resolv.conf to copy.
		DnsConfig: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
		}},
	}
	id, err := e.n.Runtime.RunPodSandbox(e.ctx, cfg, "")
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	t.Cleanup(func() {
		_ = e.n.Runtime.StopPodSandbox(context.Background(), id)
		_ = e.n.Runtime.RemovePodSandbox(context.Background(), id)
	})
	return id, cfg
}

func (e *env) create(pod string, podCfg *runtimeapi.PodSandboxConfig, name string, sc *runtimeapi.LinuxContainerSecurityContext, script string) (string, error) {
	sc.NamespaceOptions = podCfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	return e.n.Runtime.CreateContainer(e.ctx, pod, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"sh", "-c", script},
		LogPath:  name + ".log",
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: sc},
	}, podCfg)
}

// output runs a container to its end and returns what it printed.
func (e *env) output(t *testing.T, pod string, podCfg *runtimeapi.PodSandboxConfig, name string, sc *runtimeapi.LinuxContainerSecurityContext, script string) string {
	t.Helper()
	id, err := e.create(pod, podCfg, name, sc, script)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	if err := e.n.Runtime.StartContainer(e.ctx, id); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	st := e.n.WaitExited(e.ctx, t, id, 2*time.Minute)
	data, err := os.ReadFile(st.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if f := strings.SplitN(line, " ", 4); len(f) == 4 {
			out = append(out, f[3])
		}
	}
	return strings.Join(out, "\n")
}

// The probe: the container's label, then a host sysctl write and a mount, each reported as ok or its error.
const probe = `cat /proc/self/attr/current; ` +
	`v=$(cat /proc/sys/kernel/core_pattern); (printf %s "$v" > /proc/sys/kernel/core_pattern) 2>&1 && echo sysctl-ok; ` +
	`mkdir -p /mnt && (mount -t tmpfs t /mnt) 2>&1 && echo mount-ok; ` +
	`(echo 0 > /proc/self/oom_score_adj) 2>&1 && echo own-proc-ok`

func TestRuntimeDefaultAppArmorConfinesContainers(t *testing.T) {
	requireAppArmor(t)
	path := parserPath()
	if path == "" {
		t.Skipf("no apparmor_parser (set %s)", DirEnv)
	}
	e := start(t, 70, path)
	// The kernel keeps a loaded profile after noded exits: leave it as it was found.
	t.Cleanup(func() { unload(t, path, filepath.Join(e.n.State, "apparmor", apparmor.DefaultProfile)) })

	st, err := e.n.Runtime.Status(e.ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	var aa apparmor.Status
	if err := json.Unmarshal([]byte(st.GetInfo()["apparmor"]), &aa); err != nil ||
		aa != (apparmor.Status{Enabled: true, DefaultProfile: apparmor.DefaultProfile, Loaded: true}) {
		t.Fatalf("verbose status apparmor = %q (%v)", st.GetInfo()["apparmor"], err)
	}

	pod, podCfg := e.pod(t, "aa")
	// RuntimeDefault seccomp is left out and CAP_SYS_ADMIN and /proc/sys writes are granted, so that only
	// AppArmor stands between the container and the host's knobs.
	open := func(prof *runtimeapi.SecurityProfile) *runtimeapi.LinuxContainerSecurityContext {
		return &runtimeapi.LinuxContainerSecurityContext{
			Capabilities:  &runtimeapi.Capability{AddCapabilities: []string{"SYS_ADMIN"}},
			Seccomp:       &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
			ReadonlyPaths: []string{"/proc/bus"}, // not /proc/sys
			Apparmor:      prof,
		}
	}
	confined := e.output(t, pod, podCfg, "confined", open(nil), probe) // no profile named: RuntimeDefault
	if !strings.HasPrefix(confined, apparmor.DefaultProfile+" (enforce)\n") {
		t.Errorf("label of a RuntimeDefault container:\n%s", confined)
	}
	if strings.Contains(confined, "sysctl-ok") || strings.Contains(confined, "mount-ok") ||
		strings.Count(confined, "Permission denied") < 2 || !strings.Contains(confined, "own-proc-ok") {
		t.Errorf("under %s a host sysctl write and a mount must be denied (EACCES), the own /proc entries not:\n%s", apparmor.DefaultProfile, confined)
	}
	unconfined := e.output(t, pod, podCfg, "unconfined", open(&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}), probe)
	if !strings.HasPrefix(unconfined, "unconfined\n") || !strings.Contains(unconfined, "sysctl-ok") || !strings.Contains(unconfined, "mount-ok") {
		t.Errorf("an Unconfined container (the control) could not write the sysctl or mount:\n%s", unconfined)
	}

	// The profile unloaded behind noded's back (an apparmor service reload) is loaded again for the next one.
	unload(t, path, filepath.Join(e.n.State, "apparmor", apparmor.DefaultProfile))
	again := e.output(t, pod, podCfg, "again", open(&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}), probe)
	if !strings.HasPrefix(again, apparmor.DefaultProfile+" (enforce)\n") || strings.Contains(again, "sysctl-ok") {
		t.Errorf("after the profile was unloaded:\n%s", again)
	}
}

// Without apparmor_parser, noded cannot load its profile: a container asking for RuntimeDefault (or naming
// none) fails with FailedPrecondition naming the reason, instead of running unconfined; Unconfined still runs.
func TestRuntimeDefaultAppArmorWithoutParserFails(t *testing.T) {
	requireAppArmor(t)
	for _, p := range []string{"/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"} {
		if _, err := os.Stat(p); err == nil {
			t.Skipf("%s is installed", p)
		}
	}
	if _, err := exec.LookPath("apparmor_parser"); err == nil {
		t.Skip("apparmor_parser is on PATH")
	}
	if ok, err := apparmor.IsLoaded(apparmor.ProfilesFile, apparmor.DefaultProfile); err != nil || ok {
		t.Skipf("%s is loaded already (%v): noded would use it", apparmor.DefaultProfile, err)
	}
	e := start(t, 71, os.Getenv("PATH")) // without the test's parser directory
	pod, podCfg := e.pod(t, "noparser")
	_, err := e.create(pod, podCfg, "default", &runtimeapi.LinuxContainerSecurityContext{}, "true")
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "apparmor_parser") {
		t.Fatalf("CreateContainer with RuntimeDefault AppArmor and no parser: %v, want FailedPrecondition naming apparmor_parser", err)
	}
	id, err := e.create(pod, podCfg, "unconfined", &runtimeapi.LinuxContainerSecurityContext{
		Apparmor: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}}, "true")
	if err != nil {
		t.Fatalf("CreateContainer Unconfined: %v", err)
	}
	if err := e.n.Runtime.StartContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	st, err := e.n.Runtime.Status(e.ctx, true)
	if err != nil || !strings.Contains(st.GetInfo()["apparmor"], `"loaded":false`) || !strings.Contains(st.GetInfo()["apparmor"], "apparmor_parser") {
		t.Errorf("verbose status apparmor = %q, %v", st.GetInfo()["apparmor"], err)
	}
}
