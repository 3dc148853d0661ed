package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
)

func TestVersionStatusRuntimeConfig(t *testing.T) {
	cni := t.TempDir()
	writeLoopbackConf(t, cni)
	n := framework.Start(t, framework.Options{CNIConfDir: cni})
	ctx := context.Background()

	v, err := n.Runtime.Version(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "noded" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion == "" {
		t.Fatalf("Version = %+v", v)
	}

	st, err := n.Runtime.Status(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	conds := map[string]*runtimeapi.RuntimeCondition{}
	for _, c := range st.GetStatus().GetConditions() {
		conds[c.Type] = c
	}
	if c := conds[runtimeapi.RuntimeReady]; c == nil || !c.Status {
		t.Errorf("RuntimeReady = %+v, want true (runc is installed)", c)
	}
	if c := conds[runtimeapi.NetworkReady]; c == nil || !c.Status {
		t.Errorf("NetworkReady = %+v, want true (a CNI config exists)", c)
	}

	cfg, err := n.Runtime.RuntimeConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The framework forces cgroupfs; the host facts decide "auto" (tested in TestCgroupDriverAuto).
	if got := cfg.GetLinux().GetCgroupDriver(); got != runtimeapi.CgroupDriver_CGROUPFS {
		t.Errorf("RuntimeConfig cgroup driver = %v, want CGROUPFS", got)
	}
}

func TestNetworkNotReadyWithoutCNIConfig(t *testing.T) {
	n := framework.Start(t, framework.Options{}) // empty CNI conf dir
	st, err := n.Runtime.Status(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.GetStatus().GetConditions() {
		if c.Type == runtimeapi.NetworkReady && (c.Status || c.Message == "") {
			t.Fatalf("NetworkReady = %+v, want false with a message", c)
		}
	}
}

func TestCgroupDriverAuto(t *testing.T) {
	// With "auto", the driver follows the host: SYSTEMD only with systemd as PID 1 on a pure cgroup v2
	// hierarchy (read here independently of noded), CGROUPFS otherwise.
	m := framework.Start(t, framework.Options{CgroupDriver: "auto"})
	got, err := m.Runtime.RuntimeConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, systemd := os.Stat("/run/systemd/system")
	var sfs syscall.Statfs_t
	_ = syscall.Statfs("/sys/fs/cgroup", &sfs)
	want := runtimeapi.CgroupDriver_CGROUPFS
	if systemd == nil && sfs.Type == 0x63677270 {
		want = runtimeapi.CgroupDriver_SYSTEMD
	}
	if got.GetLinux().GetCgroupDriver() != want {
		t.Fatalf("auto driver = %v, want %v", got.GetLinux().GetCgroupDriver(), want)
	}
}

func TestSocketIsRootOnlyAndDirCreated(t *testing.T) {
	n := framework.Start(t, framework.Options{})
	fi, err := os.Stat(n.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode = %v, want socket 0660", fi.Mode())
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 0 || st.Gid != 0 {
		t.Fatalf("socket owned by %d:%d, want root", st.Uid, st.Gid)
	}
}

func TestSecondDaemonOnSameStateDirRefused(t *testing.T) {
	n := framework.Start(t, framework.Options{})
	other := filepath.Join(t.TempDir(), "other.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, framework.Binary(t), "--config", n.ConfigPath, "--root", n.Root,
		"--state", n.State, "--listen", other).CombinedOutput()
	if err == nil {
		t.Fatalf("second noded on the same state dir started:\n%s", out)
	}
	if !strings.Contains(string(out), "another noded") || !strings.Contains(string(out), n.State) {
		t.Fatalf("refusal does not say why: %s", out)
	}
	if _, err := os.Stat(other); err == nil {
		t.Fatal("refused daemon created its socket")
	}
	if !n.Running() {
		t.Fatal("the first noded died")
	}
}

func TestMalformedConfigNamesKeyAndLine(t *testing.T) {
	framework.RequireRoot(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte("conmon = \"/usr/bin/conmon\"\n[cni]\nconfdir = \"/x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, framework.Binary(t), "--config", cfg, "--root", filepath.Join(dir, "r"),
		"--state", filepath.Join(dir, "s"), "--listen", filepath.Join(dir, "s", "sock")).CombinedOutput()
	if err == nil {
		t.Fatalf("noded started with a malformed config:\n%s", out)
	}
	for _, want := range []string{cfg, "line 3", "cni.confdir"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("error output %q does not mention %q", out, want)
		}
	}
}

func TestUnknownRPCIsUnimplemented(t *testing.T) {
	n := framework.Start(t, framework.Options{})
	conn, err := grpc.NewClient("unix://"+n.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = conn.Invoke(ctx, "/runtime.v1.RuntimeService/NoSuchCall", &runtimeapi.VersionRequest{}, &runtimeapi.VersionResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("unknown RPC: %v, want Unimplemented", err)
	}
	// A registered RPC noded does not do yet answers Unimplemented with a message naming it.
	_, err = runtimeapi.NewRuntimeServiceClient(conn).RestorePod(ctx, &runtimeapi.RestorePodRequest{})
	if status.Code(err) != codes.Unimplemented || !strings.Contains(status.Convert(err).Message(), "RestorePod") {
		t.Fatalf("RestorePod: %v, want Unimplemented naming the RPC", err)
	}
}

func TestSIGTERMShutsDownCleanly(t *testing.T) {
	n := framework.Start(t, framework.Options{})
	n.Stop() // fails the test unless noded exits 0
	if _, err := os.Stat(n.Socket); err == nil {
		t.Fatal("socket left behind after a clean shutdown")
	}
	// A restart on the same dirs works (stale lock and socket are handled).
	n.Restart()
	if _, err := n.Runtime.Version(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
}

func writeLoopbackConf(t *testing.T, dir string) {
	t.Helper()
	conf := `{"cniVersion":"1.0.0","name":"lo-only","plugins":[{"type":"loopback"}]}`
	if err := os.WriteFile(filepath.Join(dir, "99-loopback.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}
