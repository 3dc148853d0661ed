package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	testRunc       = "/usr/local/sbin/runc"
	testCgroupRoot = "noded-test-oci"
)

// copyWithLibs copies the dynamic executable bin and the libraries ldd reports into rootfs at the same paths.
func copyWithLibs(t *testing.T, bin, rootfs string) {
	t.Helper()
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	files := []string{bin}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(rootfs, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

const keyctlProbe = `#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
	long r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0);
	if (r < 0) { printf("keyctl: %s\n", strerror(errno)); return errno == EPERM ? 3 : 4; }
	printf("keyctl: allowed\n");
	return 0;
}
`

// TestRuncSeccomp runs real containers with the generated spec: RuntimeDefault must block unshare(CLONE_NEWNET)
// and keyctl with EPERM, while ordinary commands work and CAP_SYS_ADMIN re-enables unshare.
func TestRuncSeccomp(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	busybox, err := exec.LookPath("busybox")
	if err == nil {
		busybox, err = filepath.EvalSymlinks(busybox)
	}
	bb := busybox
	if _, err2 := os.Stat(testRunc); err != nil || err2 != nil {
		t.Skipf("needs %s and busybox", testRunc)
	}
	feat, err := exec.Command(testRunc, "features").Output()
	if err != nil {
		t.Fatalf("runc features: %v", err)
	}
	features, err := ParseFeatures(feat)
	if err != nil {
		t.Fatal(err)
	}
	host, err := DetectHost()
	if err != nil {
		t.Fatal(err)
	}

	base := t.TempDir()
	rootfs := filepath.Join(base, "rootfs")
	copyWithLibs(t, busybox, rootfs)
	haveProbe := false
	if gcc, err := exec.LookPath("gcc"); err == nil {
		src := filepath.Join(base, "probe.c")
		if err := os.WriteFile(src, []byte(keyctlProbe), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(gcc, "-static", "-o", filepath.Join(rootfs, "keyctl-probe"), src).CombinedOutput(); err != nil {
			t.Logf("no static keyctl probe (gcc: %v: %s)", err, out)
		} else {
			haveProbe = true
		}
	}
	stateDir := filepath.Join(base, "state")

	t.Cleanup(func() {
		// runc delete removes each container's cgroup; the parent directories are ours to remove.
		matches, _ := filepath.Glob("/sys/fs/cgroup/*/" + testCgroupRoot)
		for _, m := range matches {
			if err := os.Remove(m); err != nil {
				t.Errorf("remove cgroup %s: %v", m, err)
			}
		}
		if left, _ := filepath.Glob("/sys/fs/cgroup/*/" + testCgroupRoot); len(left) > 0 {
			t.Errorf("cgroups left behind: %v", left)
		}
	})

	run := func(t *testing.T, id string, args []string, caps []string, profile runtimeapi.SecurityProfile_ProfileType, mutate ...func(*Params)) (int, string) {
		t.Helper()
		p := Params{
			ContainerID: id,
			SandboxID:   "sandbox-" + id,
			Config: &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: id},
				Command:  args,
				Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
					Seccomp:      &runtimeapi.SecurityProfile{ProfileType: profile},
					Capabilities: &runtimeapi.Capability{AddCapabilities: caps},
					NoNewPrivs:   true,
				}},
			},
			SandboxConfig: &runtimeapi.PodSandboxConfig{
				Metadata: &runtimeapi.PodSandboxMetadata{Name: "pod", Namespace: "default", Uid: "u"},
				Hostname: "pod",
			},
			RootfsPath: rootfs,
			Namespaces: map[specs.LinuxNamespaceType]string{
				specs.PIDNamespace: "", specs.NetworkNamespace: "", specs.IPCNamespace: "", specs.UTSNamespace: "",
			},
			CgroupsPath: "/" + testCgroupRoot + "/" + id,
			Runtime:     features,
			Host:        host,
		}
		for _, m := range mutate {
			m(&p)
		}
		s, err := Build(p)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		if (s.Linux.Seccomp == nil) != (profile == runtimeapi.SecurityProfile_Unconfined) {
			t.Fatalf("seccomp %v with profile %v", s.Linux.Seccomp != nil, profile)
		}
		bundle := filepath.Join(base, id)
		if err := os.Mkdir(bundle, 0o700); err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, testRunc, "--root", stateDir, "run", "--bundle", bundle, id)
		cmd.Stdout, cmd.Stderr = &out, &out
		runErr := cmd.Run()
		if del, err := exec.Command(testRunc, "--root", stateDir, "delete", "--force", id).CombinedOutput(); err != nil &&
			!strings.Contains(string(del), "does not exist") {
			t.Errorf("runc delete %s: %v: %s", id, err, del)
		}
		if runErr != nil {
			ee, ok := runErr.(*exec.ExitError)
			if !ok {
				t.Fatalf("runc run: %v: %s", runErr, out.String())
			}
			return ee.ExitCode(), out.String()
		}
		return 0, out.String()
	}

	t.Run("true", func(t *testing.T) {
		if code, out := run(t, "ok", []string{bb, "sh", "-c", "true && echo fine"}, nil, runtimeapi.SecurityProfile_RuntimeDefault); code != 0 || !strings.Contains(out, "fine") {
			t.Fatalf("sh -c true: exit %d: %s", code, out)
		}
	})
	t.Run("unshare blocked", func(t *testing.T) {
		code, out := run(t, "unshare", []string{bb, "unshare", "-n", bb, "true"}, nil, runtimeapi.SecurityProfile_RuntimeDefault)
		if code == 0 || !strings.Contains(out, "Operation not permitted") {
			t.Fatalf("unshare -n: exit %d: %s", code, out)
		}
	})
	t.Run("unshare with CAP_SYS_ADMIN", func(t *testing.T) {
		if code, out := run(t, "unshare-admin", []string{bb, "unshare", "-n", bb, "true"}, []string{"SYS_ADMIN"}, runtimeapi.SecurityProfile_RuntimeDefault); code != 0 {
			t.Fatalf("unshare -n with CAP_SYS_ADMIN: exit %d: %s", code, out)
		}
	})
	t.Run("keyctl blocked", func(t *testing.T) {
		if !haveProbe {
			t.Skip("no static probe")
		}
		if code, out := run(t, "keyctl", []string{"/keyctl-probe"}, nil, runtimeapi.SecurityProfile_RuntimeDefault); code != 3 {
			t.Fatalf("keyctl: exit %d: %s", code, out)
		}
		// The probe itself works: unconfined, keyctl succeeds.
		if code, out := run(t, "keyctl-unconfined", []string{"/keyctl-probe"}, nil, runtimeapi.SecurityProfile_Unconfined); code != 0 {
			t.Fatalf("unconfined keyctl: exit %d: %s", code, out)
		}
	})
	t.Run("self check", func(t *testing.T) {
		// The process must really be confined: Seccomp: 2 (filter) in its status.
		code, out := run(t, "status", []string{bb, "grep", "-E", "^(Seccomp|NoNewPrivs):", "/proc/self/status"}, nil, runtimeapi.SecurityProfile_RuntimeDefault)
		if code != 0 || !strings.Contains(out, "Seccomp:\t2") || !strings.Contains(out, "NoNewPrivs:\t1") {
			t.Fatalf("status: exit %d: %s", code, out)
		}
	})
	t.Run("full spec", func(t *testing.T) {
		// A realistic unprivileged container: non-root user, read-only rootfs, a recursive read-only volume,
		// a device, a sandbox hosts file: runc must accept all of it.
		vol := t.TempDir()
		if err := os.WriteFile(filepath.Join(vol, "f"), []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
		hosts := filepath.Join(t.TempDir(), "hosts")
		if err := os.WriteFile(hosts, []byte("127.0.0.1 pod\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		script := strings.ReplaceAll("B id -u; B id -G; B cat /vol/f; B cat /etc/hosts; test -c /dev/mynull && echo dev-ok; "+
			"B touch /vol/x 2>/dev/null || echo vol-ro; B touch /x 2>/dev/null || echo rootfs-ro; "+
			"B wc -c /proc/timer_list; B touch /proc/sys/kernel/x 2>/dev/null || echo proc-sys-ro", "B ", bb+" ")
		code, out := run(t, "full", []string{bb, "sh", "-c", script}, nil, runtimeapi.SecurityProfile_RuntimeDefault, func(p *Params) {
			sc := p.Config.Linux.SecurityContext
			sc.RunAsUser = &runtimeapi.Int64Value{Value: 1000}
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: 2000}
			sc.SupplementalGroups = []int64{3000}
			sc.ReadonlyRootfs = true
			p.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/vol", HostPath: vol, Readonly: true, RecursiveReadOnly: features.RecursiveReadOnly}}
			p.Config.Devices = []*runtimeapi.Device{{HostPath: "/dev/null", ContainerPath: "/dev/mynull", Permissions: "rw"}}
			p.SandboxFiles.Hosts = hosts
		})
		want := "1000\n2000 3000\ndata127.0.0.1 pod\ndev-ok\n" +
			"vol-ro\nrootfs-ro\n" +
			"0 /proc/timer_list\nproc-sys-ro\n"
		if code != 0 || out != want {
			t.Fatalf("exit %d, output %q, want %q", code, out, want)
		}
	})
}
