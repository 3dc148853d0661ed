package oci

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

func testParams(t testing.TB) Params {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\napp:x:1000:\nextra:x:3000:app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return Params{
		ContainerID: "c1",
		SandboxID:   "s1",
		Config: &runtimeapi.ContainerConfig{
			Metadata:    &runtimeapi.ContainerMetadata{Name: "ctr"},
			Image:       &runtimeapi.ImageSpec{Image: "docker.io/library/busybox:latest"},
			Annotations: map[string]string{"a": "b"},
		},
		SandboxConfig: &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "pod", Namespace: "ns", Uid: "uid1"},
			Hostname: "podhost",
		},
		Image:       ImageConfig{Env: []string{"PATH=/img/bin", "FOO=img"}, Entrypoint: []string{"/entry"}, Cmd: []string{"cmd1"}},
		RootfsPath:  root,
		Namespaces:  map[specs.LinuxNamespaceType]string{specs.NetworkNamespace: "/var/run/netns/x", specs.IPCNamespace: "/proc/1/ns/ipc", specs.UTSNamespace: "/proc/1/ns/uts", specs.PIDNamespace: ""},
		CgroupsPath: "/kubepods/pod1/c1",
		Runtime:     Features{Known: true, Seccomp: true, RecursiveReadOnly: true},
		Host:        HostInfo{OOMScoreAdjMin: -500, NofileMax: 20000, DevDir: t.TempDir(), Seccomp: true},
	}
}

func sc(p *Params) *runtimeapi.LinuxContainerSecurityContext {
	if p.Config.Linux == nil {
		p.Config.Linux = &runtimeapi.LinuxContainerConfig{}
	}
	if p.Config.Linux.SecurityContext == nil {
		p.Config.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{}
	}
	return p.Config.Linux.SecurityContext
}

func mustBuild(t *testing.T, p Params) *specs.Spec {
	t.Helper()
	s, err := Build(p)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return s
}

func TestArgs(t *testing.T) {
	img := ImageConfig{Entrypoint: []string{"/ep", "-x"}, Cmd: []string{"c1", "c2"}}
	for _, tc := range []struct {
		name          string
		command, args []string
		img           ImageConfig
		want          []string
	}{
		{"image only", nil, nil, img, []string{"/ep", "-x", "c1", "c2"}},
		{"command replaces entrypoint and drops cmd", []string{"/bin/sh"}, nil, img, []string{"/bin/sh"}},
		{"command and args", []string{"/bin/sh"}, []string{"-c", "x"}, img, []string{"/bin/sh", "-c", "x"}},
		{"args replace cmd", nil, []string{"a"}, img, []string{"/ep", "-x", "a"}},
		{"cmd only image", nil, nil, ImageConfig{Cmd: []string{"/run"}}, []string{"/run"}},
		{"args without entrypoint", nil, []string{"/bin/true"}, ImageConfig{Cmd: []string{"/x"}}, []string{"/bin/true"}},
	} {
		got, err := Args(tc.command, tc.args, tc.img)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if _, err := Args(nil, nil, ImageConfig{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("empty command: %v", err)
	}
}

func TestProcess(t *testing.T) {
	p := testParams(t)
	p.Config.Envs = []*runtimeapi.KeyValue{{Key: "FOO", Value: []byte("cri")}, {Key: "NEW", Value: []byte("1")}}
	p.Config.Tty = true
	p.Config.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{OomScoreAdj: -997}}
	s := mustBuild(t, p)
	wantEnv := []string{"HOSTNAME=podhost", "PATH=/img/bin", "FOO=cri", "NEW=1", "HOME=/root"}
	if !slices.Equal(s.Process.Env, wantEnv) {
		t.Errorf("env %v, want %v", s.Process.Env, wantEnv)
	}
	if !slices.Equal(s.Process.Args, []string{"/entry", "cmd1"}) || s.Process.Cwd != "/" || !s.Process.Terminal {
		t.Errorf("args %v cwd %q terminal %v", s.Process.Args, s.Process.Cwd, s.Process.Terminal)
	}
	if *s.Process.OOMScoreAdj != -500 {
		t.Errorf("oomScoreAdj %d, want clamped -500", *s.Process.OOMScoreAdj)
	}
	if len(s.Process.Rlimits) != 1 || s.Process.Rlimits[0].Hard != 20000 || s.Process.Rlimits[0].Soft != 20000 {
		t.Errorf("rlimits %+v", s.Process.Rlimits)
	}

	p = testParams(t)
	p.Image.Env = nil
	p.Image.WorkingDir = "/img"
	p.Host.NofileMax = 0
	p.Config.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{OomScoreAdj: 1000}}
	s = mustBuild(t, p)
	if !slices.Contains(s.Process.Env, "PATH="+DefaultPath) || s.Process.Cwd != "/img" ||
		s.Process.Rlimits[0].Hard != DefaultRlimitNofile || *s.Process.OOMScoreAdj != 1000 {
		t.Errorf("env %v cwd %q rlimits %+v oom %d", s.Process.Env, s.Process.Cwd, s.Process.Rlimits, *s.Process.OOMScoreAdj)
	}
	p.Config.WorkingDir = "/cri"
	if s = mustBuild(t, p); s.Process.Cwd != "/cri" {
		t.Errorf("cwd %q", s.Process.Cwd)
	}
	p.Config.WorkingDir = "relative"
	if _, err := Build(p); !errdefs.IsInvalidArgument(err) {
		t.Errorf("relative working dir: %v", err)
	}
}

func TestUser(t *testing.T) {
	p := testParams(t)
	p.Image.User = "app"
	sc(&p).SupplementalGroups = []int64{5000}
	s := mustBuild(t, p)
	u := s.Process.User
	if u.UID != 1000 || u.GID != 1000 || !slices.Equal(u.AdditionalGids, []uint32{1000, 3000, 5000}) {
		t.Fatalf("user %+v", u)
	}
	if !slices.Contains(s.Process.Env, "HOME=/home/app") {
		t.Errorf("HOME missing: %v", s.Process.Env)
	}
	cu := ContainerUser(s).GetLinux()
	if cu.Uid != 1000 || cu.Gid != 1000 || !slices.Equal(cu.SupplementalGroups, []int64{1000, 3000, 5000}) {
		t.Errorf("container user %+v", cu)
	}
	sc(&p).SupplementalGroupsPolicy = runtimeapi.SupplementalGroupsPolicy_Strict
	sc(&p).RunAsUser = &runtimeapi.Int64Value{Value: 1000}
	sc(&p).RunAsGroup = &runtimeapi.Int64Value{Value: 42}
	s = mustBuild(t, p)
	if u := s.Process.User; u.UID != 1000 || u.GID != 42 || !slices.Equal(u.AdditionalGids, []uint32{42, 5000}) {
		t.Fatalf("strict user %+v", u)
	}
	sc(&p).RunAsUser = nil
	if _, err := Build(p); !errdefs.IsInvalidArgument(err) {
		t.Errorf("run_as_group without user: %v", err)
	}
}

func TestCapabilities(t *testing.T) {
	def := DefaultCapabilities()
	for _, tc := range []struct {
		name      string
		add, drop []string
		want      []string
		wantErr   bool
	}{
		{name: "default", want: def},
		{name: "add one", add: []string{"NET_ADMIN"}, want: append(slices.Clone(def), "CAP_NET_ADMIN")},
		{name: "drop with prefix", drop: []string{"CAP_KILL", "net_raw"}, want: slices.DeleteFunc(slices.Clone(def), func(c string) bool { return c == "CAP_KILL" || c == "CAP_NET_RAW" })},
		{name: "drop all add one", add: []string{"NET_BIND_SERVICE"}, drop: []string{"ALL"}, want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "add all", add: []string{"ALL"}, want: allCapabilities(0)},
		{name: "add all drop one", add: []string{"all"}, drop: []string{"SYS_ADMIN"}, want: slices.DeleteFunc(allCapabilities(0), func(c string) bool { return c == "CAP_SYS_ADMIN" })},
		{name: "unknown", add: []string{"FLY"}, wantErr: true},
	} {
		got, err := Capabilities(&runtimeapi.Capability{AddCapabilities: tc.add, DropCapabilities: tc.drop}, 0)
		if tc.wantErr {
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "add_capabilities") {
				t.Errorf("%s: err %v", tc.name, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v %v, want %v", tc.name, got, err, tc.want)
		}
	}
	// The host bounding set limits "ALL".
	got, _ := Capabilities(&runtimeapi.Capability{AddCapabilities: []string{"ALL"}}, 1<<21|1)
	if !slices.Equal(got, []string{"CAP_CHOWN", "CAP_SYS_ADMIN"}) {
		t.Errorf("ALL with host mask: %v", got)
	}
}

func TestSecurity(t *testing.T) {
	p := testParams(t)
	sc(&p).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	sc(&p).NoNewPrivs = true
	sc(&p).ReadonlyRootfs = true
	s := mustBuild(t, p)
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Fatalf("seccomp %+v", s.Linux.Seccomp)
	}
	if !s.Process.NoNewPrivileges || !s.Root.Readonly {
		t.Errorf("nnp %v readonly %v", s.Process.NoNewPrivileges, s.Root.Readonly)
	}
	if !slices.Equal(s.Linux.MaskedPaths, DefaultMaskedPaths()) || !slices.Equal(s.Linux.ReadonlyPaths, DefaultReadonlyPaths()) {
		t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if len(s.Process.Capabilities.Inheritable) != 0 || len(s.Process.Capabilities.Ambient) != 0 ||
		!slices.Equal(s.Process.Capabilities.Bounding, DefaultCapabilities()) {
		t.Errorf("caps %+v", s.Process.Capabilities)
	}
	if s.Process.ApparmorProfile != "" {
		t.Errorf("apparmor profile set without AppArmor")
	}

	// Explicit lists from kubelet.
	sc(&p).MaskedPaths = []string{"/proc/x"}
	sc(&p).ReadonlyPaths = []string{"/proc/y"}
	s = mustBuild(t, p)
	if !slices.Equal(s.Linux.MaskedPaths, []string{"/proc/x"}) || !slices.Equal(s.Linux.ReadonlyPaths, []string{"/proc/y"}) {
		t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	sc(&p).MaskedPaths = []string{"proc/x"}
	if _, err := Build(p); !errdefs.IsInvalidArgument(err) {
		t.Errorf("relative masked path: %v", err)
	}
	sc(&p).MaskedPaths = nil

	// Ambient capabilities for a non-root user.
	sc(&p).RunAsUser = &runtimeapi.Int64Value{Value: 1000}
	sc(&p).Capabilities = &runtimeapi.Capability{AddAmbientCapabilities: []string{"NET_ADMIN"}}
	s = mustBuild(t, p)
	c := s.Process.Capabilities
	if !slices.Equal(c.Ambient, []string{"CAP_NET_ADMIN"}) || !slices.Equal(c.Inheritable, []string{"CAP_NET_ADMIN"}) ||
		!slices.Contains(c.Permitted, "CAP_NET_ADMIN") || !slices.Contains(c.Bounding, "CAP_NET_ADMIN") {
		t.Errorf("ambient caps %+v", c)
	}
	sc(&p).RunAsUser = &runtimeapi.Int64Value{Value: 0}
	if s = mustBuild(t, p); len(s.Process.Capabilities.Ambient) != 0 {
		t.Errorf("ambient caps for root: %+v", s.Process.Capabilities)
	}

	// Legacy and localhost seccomp.
	sc(&p).Seccomp = nil
	for _, tc := range []struct {
		path    string
		want    bool
		wantErr bool
	}{
		{"", false, false}, {"unconfined", false, false}, {"runtime/default", true, false},
		{"docker/default", true, false}, {"localhost/relative.json", false, true},
		{"localhost/" + filepath.Join(t.TempDir(), "missing.json"), false, true}, {"bogus", false, true},
	} {
		//lint:ignore SA1019 the legacy field is still supported
		sc(&p).SeccompProfilePath = tc.path
		s, err := Build(p)
		if tc.wantErr {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("%q: want InvalidArgument, got %v", tc.path, err)
			}
			continue
		}
		if err != nil || (s.Linux.Seccomp != nil) != tc.want {
			t.Errorf("%q: seccomp %v err %v", tc.path, s.Linux.Seccomp != nil, err)
		}
	}
	prof := filepath.Join(t.TempDir(), "p.json")
	if err := os.WriteFile(prof, []byte(`{"defaultAction":"SCMP_ACT_LOG"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 the legacy field is still supported
	sc(&p).SeccompProfilePath = ""
	sc(&p).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: prof}
	if s = mustBuild(t, p); s.Linux.Seccomp.DefaultAction != specs.ActLog {
		t.Errorf("localhost profile: %+v", s.Linux.Seccomp)
	}
	// A runtime that says it has no seccomp fails both RuntimeDefault and Localhost.
	p.Runtime.Seccomp = false
	if _, err := Build(p); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("localhost without runtime seccomp support: %v", err)
	}
	sc(&p).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	if _, err := Build(p); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("RuntimeDefault without runtime seccomp support: %v", err)
	}
	p.Runtime.Seccomp = true

	// AppArmor.
	sc(&p).Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "myprof"}
	if _, err := Build(p); !errdefs.IsInvalidArgument(err) {
		t.Errorf("apparmor without AppArmor: %v", err)
	}
	p.Host.AppArmor = true
	if s = mustBuild(t, p); s.Process.ApparmorProfile != "myprof" {
		t.Errorf("apparmor profile %q", s.Process.ApparmorProfile)
	}
}

func TestPrivileged(t *testing.T) {
	p := testParams(t)
	sc(&p).Privileged = true
	sc(&p).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	sc(&p).NoNewPrivs = true
	if _, err := Build(p); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("privileged container in unprivileged sandbox: %v", err)
	}
	p.SandboxConfig.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{Privileged: true}}
	// A fake /dev with one device node (needs mknod: root).
	if os.Getuid() == 0 {
		if err := os.Mkdir(filepath.Join(p.Host.DevDir, "pts"), 0o755); err != nil {
			t.Fatal(err)
		}
		mknodNull(t, filepath.Join(p.Host.DevDir, "null0"))
		mknodNull(t, filepath.Join(p.Host.DevDir, "pts", "0"))
	}
	s := mustBuild(t, p)
	if s.Linux.Seccomp != nil || len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 || s.Process.NoNewPrivileges {
		t.Errorf("privileged keeps confinement: seccomp=%v masked=%v ro=%v nnp=%v", s.Linux.Seccomp != nil, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, s.Process.NoNewPrivileges)
	}
	if !slices.Equal(s.Process.Capabilities.Bounding, allCapabilities(0)) {
		t.Errorf("caps %v", s.Process.Capabilities.Bounding)
	}
	if len(s.Linux.Resources.Devices) != 1 || !s.Linux.Resources.Devices[0].Allow || s.Linux.Resources.Devices[0].Type != "" {
		t.Errorf("device rules %+v", s.Linux.Resources.Devices)
	}
	for _, m := range s.Mounts {
		if m.Destination == "/sys" && !slices.Contains(m.Options, "rw") {
			t.Errorf("/sys not rw: %v", m.Options)
		}
	}
	if os.Getuid() == 0 {
		if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/null0" || s.Linux.Devices[0].Major != 1 || s.Linux.Devices[0].Minor != 3 {
			t.Errorf("host devices %+v", s.Linux.Devices)
		}
	}
}

func mknodNull(t *testing.T, path string) {
	t.Helper()
	if err := mknodChar(path, 1, 3); err != nil {
		t.Fatal(err)
	}
}

func findMount(s *specs.Spec, dst string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dst {
			return &s.Mounts[i]
		}
	}
	return nil
}

func TestMounts(t *testing.T) {
	p := testParams(t)
	vol := t.TempDir()
	hostsFile := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hostsFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(vol, link); err != nil {
		t.Fatal(err)
	}
	p.SandboxFiles = SandboxFiles{Hosts: "/sb/hosts", Hostname: "/sb/hostname", ResolvConf: "/sb/resolv.conf", ShmDir: "/sb/shm"}
	p.Config.Mounts = []*runtimeapi.Mount{
		{ContainerPath: "/data/sub", HostPath: vol, Readonly: true, MountOptions: []string{"noexec"}},
		{ContainerPath: "/data", HostPath: link},
		{ContainerPath: "/etc/hosts", HostPath: hostsFile},
		{ContainerPath: "/rro", HostPath: vol, Readonly: true, RecursiveReadOnly: true},
	}
	s := mustBuild(t, p)
	var dsts []string
	for _, m := range s.Mounts {
		dsts = append(dsts, m.Destination)
	}
	want := []string{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/etc/hostname",
		"/etc/resolv.conf", "/dev/shm", "/data", "/rro", "/data/sub", "/etc/hosts"}
	if !slices.Equal(dsts, want) {
		t.Fatalf("mount order %v\nwant %v", dsts, want)
	}
	if m := findMount(s, "/data"); m.Source != vol || !slices.Equal(m.Options, []string{"rbind", "rprivate", "rw"}) {
		t.Errorf("/data %+v", m)
	}
	if m := findMount(s, "/data/sub"); !slices.Equal(m.Options, []string{"rbind", "rprivate", "ro", "noexec"}) {
		t.Errorf("/data/sub %+v", m)
	}
	if m := findMount(s, "/rro"); !slices.Equal(m.Options, []string{"rbind", "rprivate", "ro", "rro"}) {
		t.Errorf("/rro %+v", m)
	}
	if m := findMount(s, "/etc/hosts"); m.Source != hostsFile {
		t.Errorf("CRI /etc/hosts should win: %+v", m)
	}
	if m := findMount(s, "/dev/shm"); m.Source != "/sb/shm" || m.Type != "bind" {
		t.Errorf("/dev/shm %+v", m)
	}
	if m := findMount(s, "/sys"); !slices.Contains(m.Options, "ro") {
		t.Errorf("/sys %+v", m)
	}

	bad := []struct {
		name  string
		m     *runtimeapi.Mount
		check func(error) bool
	}{
		{"relative container path", &runtimeapi.Mount{ContainerPath: "data", HostPath: vol}, errdefs.IsInvalidArgument},
		{"unclean container path", &runtimeapi.Mount{ContainerPath: "/a/../b", HostPath: vol}, errdefs.IsInvalidArgument},
		{"root", &runtimeapi.Mount{ContainerPath: "/", HostPath: vol}, errdefs.IsInvalidArgument},
		{"relative host path", &runtimeapi.Mount{ContainerPath: "/x", HostPath: "rel"}, errdefs.IsInvalidArgument},
		{"missing host path", &runtimeapi.Mount{ContainerPath: "/x", HostPath: filepath.Join(vol, "nope")}, errdefs.IsNotFound},
		{"rro without ro", &runtimeapi.Mount{ContainerPath: "/x", HostPath: vol, RecursiveReadOnly: true}, errdefs.IsInvalidArgument},
		{"rro with propagation", &runtimeapi.Mount{ContainerPath: "/x", HostPath: "/", Readonly: true, RecursiveReadOnly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, errdefs.IsInvalidArgument},
		{"image volume not prepared", &runtimeapi.Mount{ContainerPath: "/x", Image: &runtimeapi.ImageSpec{Image: "img"}}, errdefs.IsInvalidArgument},
		{"image volume with host path", &runtimeapi.Mount{ContainerPath: "/x", HostPath: vol, Image: &runtimeapi.ImageSpec{Image: "img"}}, errdefs.IsInvalidArgument},
		{"bad option", &runtimeapi.Mount{ContainerPath: "/x", HostPath: vol, MountOptions: []string{"suid,dev"}}, errdefs.IsInvalidArgument},
		{"idmap unsupported", &runtimeapi.Mount{ContainerPath: "/x", HostPath: vol, UidMappings: []*runtimeapi.IDMapping{{Length: 1}}}, errdefs.IsInvalidArgument},
	}
	for _, tc := range bad {
		p.Config.Mounts = []*runtimeapi.Mount{tc.m}
		if _, err := Build(p); !tc.check(err) {
			t.Errorf("%s: unexpected error %v", tc.name, err)
		}
	}
	p.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/x", HostPath: vol, Readonly: true, RecursiveReadOnly: true}}
	p.Runtime.RecursiveReadOnly = false
	if _, err := Build(p); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "not supported by the runtime") {
		t.Errorf("rro unsupported: %v", err)
	}

	// idmap mounts when supported.
	p.Runtime.IDMapMounts = true
	p.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/x", HostPath: vol,
		UidMappings: []*runtimeapi.IDMapping{{HostId: 100000, ContainerId: 0, Length: 65536}},
		GidMappings: []*runtimeapi.IDMapping{{HostId: 100000, ContainerId: 0, Length: 65536}}}}
	s = mustBuild(t, p)
	if m := findMount(s, "/x"); len(m.UIDMappings) != 1 || m.UIDMappings[0].HostID != 100000 || m.GIDMappings[0].Size != 65536 {
		t.Errorf("idmap mount %+v", m)
	}
}

func TestPropagation(t *testing.T) {
	mi := filepath.Join(t.TempDir(), "mountinfo")
	content := `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:5 / /priv rw - tmpfs tmpfs rw
31 22 0:6 / /slave rw master:3 - tmpfs tmpfs rw
32 30 0:7 / /priv/shared rw shared:9 - tmpfs tmpfs rw
33 22 0:8 / /with\040space rw - tmpfs tmpfs rw
`
	if err := os.WriteFile(mi, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path          string
		mp            string
		shared, slave bool
	}{
		{"/var/lib", "/", true, false},
		{"/priv/x", "/priv", false, false},
		{"/privx", "/", true, false},
		{"/slave", "/slave", false, true},
		{"/priv/shared/a/b", "/priv/shared", true, false},
		{"/with space/f", "/with space", false, false},
	} {
		got, err := mountPropagationOf(mi, tc.path)
		if err != nil || got.mountPoint != tc.mp || got.shared != tc.shared || got.slave != tc.slave {
			t.Errorf("%s: got %+v %v", tc.path, got, err)
		}
	}

	// Through Build, with directories standing in for the mount points.
	p := testParams(t)
	dir := t.TempDir()
	lines := "1 0 8:1 / / rw shared:1 - ext4 x rw\n" +
		"2 1 0:5 / " + dir + "/priv rw - tmpfs t rw\n" +
		"3 1 0:6 / " + dir + "/slave rw master:2 - tmpfs t rw\n"
	if err := os.WriteFile(mi, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	p.Host.MountInfo = mi
	for _, d := range []string{"priv", "slave", "shared"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		dir     string
		prop    runtimeapi.MountPropagation
		ok      bool
		rootfsP string
	}{
		{"priv", runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL, false, ""},
		{"priv", runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, false, ""},
		{"slave", runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, true, "rslave"},
		{"slave", runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL, false, ""},
		{"shared", runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL, true, "rshared"},
		{"priv", runtimeapi.MountPropagation_PROPAGATION_PRIVATE, true, ""},
	} {
		p.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/m", HostPath: filepath.Join(dir, tc.dir), Propagation: tc.prop}}
		s, err := Build(p)
		if !tc.ok {
			if !errorsIsFailedPrecondition(err) {
				t.Errorf("%s/%v: want FailedPrecondition, got %v", tc.dir, tc.prop, err)
			}
			continue
		}
		if err != nil || s.Linux.RootfsPropagation != tc.rootfsP {
			t.Errorf("%s/%v: %v rootfsPropagation %q", tc.dir, tc.prop, err, s.Linux.RootfsPropagation)
		}
	}
}

func TestDevices(t *testing.T) {
	p := testParams(t)
	p.Config.Devices = []*runtimeapi.Device{{HostPath: "/dev/null", ContainerPath: "/dev/mynull", Permissions: "rw"}}
	s := mustBuild(t, p)
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/mynull" || s.Linux.Devices[0].Type != "c" ||
		s.Linux.Devices[0].Major != 1 || s.Linux.Devices[0].Minor != 3 {
		t.Fatalf("devices %+v", s.Linux.Devices)
	}
	rules := s.Linux.Resources.Devices
	if rules[0].Allow || rules[0].Access != "rwm" {
		t.Errorf("first rule must deny all: %+v", rules[0])
	}
	last := rules[len(rules)-1]
	if !last.Allow || last.Type != "c" || *last.Major != 1 || *last.Minor != 3 || last.Access != "rw" {
		t.Errorf("device rule %+v", last)
	}
	for name, d := range map[string]*runtimeapi.Device{
		"bad perms":   {HostPath: "/dev/null", ContainerPath: "/dev/x", Permissions: "rx"},
		"not device":  {HostPath: filepath.Join(p.RootfsPath, "etc/passwd"), ContainerPath: "/dev/x"},
		"empty dir":   {HostPath: p.RootfsPath, ContainerPath: "/dev/x"},
		"relative":    {HostPath: "dev/null", ContainerPath: "/dev/x"},
		"bad ctrpath": {HostPath: "/dev/null", ContainerPath: "/dev/../x"},
	} {
		p.Config.Devices = []*runtimeapi.Device{d}
		if _, err := Build(p); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	p.Config.Devices = []*runtimeapi.Device{{HostPath: "/dev/does-not-exist", ContainerPath: "/dev/x"}}
	if _, err := Build(p); !errdefs.IsNotFound(err) {
		t.Errorf("missing device: %v", err)
	}
}

func TestNamespaces(t *testing.T) {
	p := testParams(t)
	s := mustBuild(t, p)
	want := []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace, Path: "/var/run/netns/x"},
		{Type: specs.IPCNamespace, Path: "/proc/1/ns/ipc"}, {Type: specs.UTSNamespace, Path: "/proc/1/ns/uts"},
		{Type: specs.MountNamespace}}
	if !slices.Equal(s.Linux.Namespaces, want) {
		t.Errorf("namespaces %+v", s.Linux.Namespaces)
	}
	p.Runtime.CgroupV2 = true
	if s = mustBuild(t, p); s.Linux.Namespaces[len(s.Linux.Namespaces)-1].Type != specs.CgroupNamespace {
		t.Errorf("no cgroup ns on v2: %+v", s.Linux.Namespaces)
	}
	p.Namespaces[specs.NetworkNamespace] = "relative"
	if _, err := Build(p); !errdefs.IsInvalidArgument(err) {
		t.Errorf("relative ns path: %v", err)
	}
	p.Namespaces[specs.NetworkNamespace] = ""

	userns := &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{
		Mode: runtimeapi.NamespaceMode_POD,
		Uids: []*runtimeapi.IDMapping{{HostId: 65536, ContainerId: 0, Length: 65536}},
		Gids: []*runtimeapi.IDMapping{{HostId: 65536, ContainerId: 0, Length: 65536}},
	}}
	sc(&p).NamespaceOptions = userns
	if _, err := Build(p); !errdefs.IsInvalidArgument(err) {
		t.Errorf("userns without runtime support: %v", err)
	}
	p.Runtime.UserNamespaces = true
	s = mustBuild(t, p)
	if s.Linux.Namespaces[0].Type != specs.UserNamespace || len(s.Linux.UIDMappings) != 1 || s.Linux.GIDMappings[0].HostID != 65536 {
		t.Errorf("userns %+v %+v", s.Linux.Namespaces, s.Linux.UIDMappings)
	}
	// The pod's pinned user namespace is joined by path alone: runc reads its mappings.
	p.Namespaces[specs.UserNamespace] = "/run/noded/ns/pod/user"
	s = mustBuild(t, p)
	if s.Linux.Namespaces[0] != (specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/run/noded/ns/pod/user"}) ||
		s.Linux.UIDMappings != nil || s.Linux.GIDMappings != nil {
		t.Errorf("joined userns %+v with mappings %+v %+v", s.Linux.Namespaces[0], s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	delete(p.Namespaces, specs.UserNamespace)
	userns.UsernsOptions.Gids = nil
	if _, err := Build(p); !errdefs.IsInvalidArgument(err) {
		t.Errorf("userns without gids: %v", err)
	}
}

// procMount Unmasked (hostUsers: false): kubelet sends empty masked and read-only lists, which mean none only in
// a user namespace; without one, empty lists keep the defaults.
func TestUnmaskedProcWithUserNamespace(t *testing.T) {
	p := testParams(t)
	p.Runtime.UserNamespaces = true
	sc(&p).MaskedPaths, sc(&p).ReadonlyPaths = []string{}, []string{}
	s := mustBuild(t, p)
	if !slices.Equal(s.Linux.MaskedPaths, DefaultMaskedPaths()) || !slices.Equal(s.Linux.ReadonlyPaths, DefaultReadonlyPaths()) {
		t.Errorf("no user namespace, empty lists: masked %v readonly %v; want the defaults", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	m := []*runtimeapi.IDMapping{{HostId: 65536, ContainerId: 0, Length: 65536}}
	sc(&p).NamespaceOptions = &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}}
	s = mustBuild(t, p)
	if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 {
		t.Errorf("user namespace, empty lists: masked %v readonly %v; want none", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	// Default procMount in a user namespace: kubelet's default lists are used as sent.
	sc(&p).MaskedPaths, sc(&p).ReadonlyPaths = DefaultMaskedPaths(), DefaultReadonlyPaths()
	s = mustBuild(t, p)
	if !slices.Equal(s.Linux.MaskedPaths, DefaultMaskedPaths()) || !slices.Equal(s.Linux.ReadonlyPaths, DefaultReadonlyPaths()) {
		t.Errorf("user namespace, default lists: masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
}

func TestResourcesAndSysctls(t *testing.T) {
	p := testParams(t)
	p.PidsLimit = 100
	p.Config.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{
		CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 1 << 28, MemorySwapLimitInBytes: 1 << 29,
		CpusetCpus: "0", CpusetMems: "0", HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}},
		Unified: map[string]string{"memory.high": "100M"},
	}}
	p.SandboxConfig.Linux = &runtimeapi.LinuxPodSandboxConfig{Sysctls: map[string]string{"net.ipv4.ip_forward": "1", "kernel/shm_rmid_forced": "1"}}
	s := mustBuild(t, p)
	r := s.Linux.Resources
	if *r.CPU.Period != 100000 || *r.CPU.Quota != 50000 || *r.CPU.Shares != 512 || r.CPU.Cpus != "0" ||
		*r.Memory.Limit != 1<<28 || *r.Memory.Swap != 1<<29 || r.HugepageLimits[0].Pagesize != "2MB" ||
		r.Unified["memory.high"] != "100M" || *r.Pids.Limit != 100 || len(r.Devices) == 0 {
		t.Errorf("resources %+v", r)
	}
	if s.Linux.Sysctl["net.ipv4.ip_forward"] != "1" || s.Linux.Sysctl["kernel.shm_rmid_forced"] != "1" {
		t.Errorf("sysctls %v", s.Linux.Sysctl)
	}
	for _, bad := range []string{"kernel.panic", "vm.swappiness"} {
		p.SandboxConfig.Linux.Sysctls = map[string]string{bad: "1"}
		if _, err := Build(p); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	delete(p.Namespaces, specs.NetworkNamespace)
	p.SandboxConfig.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
	if _, err := Build(p); !errdefs.IsInvalidArgument(err) {
		t.Errorf("net sysctl with host network: %v", err)
	}

	empty, err := Resources(nil)
	if err != nil || empty == nil || empty.CPU != nil || empty.Memory != nil {
		t.Errorf("Resources(nil) = %+v, %v", empty, err)
	}
	if _, err := Resources(&runtimeapi.LinuxContainerResources{CpuQuota: -5}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("negative quota: %v", err)
	}
}

// kubelet's static CPU manager sends cpu_quota -1 for containers with exclusive CPUs: no quota.
func TestResourcesCPUQuotaNoQuota(t *testing.T) {
	r, err := Resources(&runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: -1, CpuShares: 2048, CpusetCpus: "1"})
	if err != nil {
		t.Fatalf("cpu_quota -1: %v", err)
	}
	if r.CPU == nil || r.CPU.Quota == nil || *r.CPU.Quota != -1 || r.CPU.Period == nil || *r.CPU.Period != 100000 || r.CPU.Cpus != "1" {
		t.Errorf("cpu_quota -1 gives %+v, want quota -1 (unlimited) with the period and cpuset kept", r.CPU)
	}
	r, err = Resources(&runtimeapi.LinuxContainerResources{CpuQuota: 0, CpuShares: 2})
	if err != nil || r.CPU == nil || r.CPU.Quota != nil {
		t.Errorf("cpu_quota 0 = %+v, %v; want no quota", r, err)
	}
}

func TestAnnotationsAndStopSignal(t *testing.T) {
	p := testParams(t)
	s := mustBuild(t, p)
	for k, v := range map[string]string{"a": "b", AnnotationSandboxID: "s1", AnnotationSandboxName: "pod",
		AnnotationSandboxNamespace: "ns", AnnotationContainerName: "ctr", AnnotationContainerType: "container",
		AnnotationImageName: "docker.io/library/busybox:latest"} {
		if s.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, s.Annotations[k], v)
		}
	}
	if s.Linux.CgroupsPath != "/kubepods/pod1/c1" || s.Root.Path != p.RootfsPath {
		t.Errorf("cgroupsPath %q root %q", s.Linux.CgroupsPath, s.Root.Path)
	}
	for _, tc := range []struct {
		cri  runtimeapi.Signal
		img  string
		want string
		num  int
	}{
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "", "SIGTERM", 15},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "quit", "SIGQUIT", 3},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "9", "SIGKILL", 9},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "SIGRTMIN+3", "SIGRTMIN+3", 37},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "SIGIOT", "SIGIOT", 6},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "SIGRTMAX-2", "SIGRTMAX-2", 62},
		{runtimeapi.Signal_SIGNAL_SIGINT, "SIGQUIT", "SIGINT", 2},
		{runtimeapi.Signal_SIGNAL_SIGRTMINPLUS1, "", "SIGRTMIN+1", 35},
		{runtimeapi.Signal_SIGNAL_SIGPOLL, "", "SIGPOLL", 29},
	} {
		got, err := StopSignal(&runtimeapi.ContainerConfig{StopSignal: tc.cri}, ImageConfig{StopSignal: tc.img})
		if err != nil || got.Name != tc.want || int(got.Num) != tc.num {
			t.Errorf("StopSignal(%v, %q) = %+v, %v; want %s (%d)", tc.cri, tc.img, got, err, tc.want, tc.num)
		}
	}
	for _, img := range []string{"SIGBOGUS", "SIGRTMIN+40", "0", "99"} {
		if _, err := StopSignal(nil, ImageConfig{StopSignal: img}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("image signal %q: %v, want InvalidArgument", img, err)
		}
	}
	if _, err := StopSignal(&runtimeapi.ContainerConfig{StopSignal: 999}, ImageConfig{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("unknown CRI signal: %v, want InvalidArgument", err)
	}
}

func TestParseFeatures(t *testing.T) {
	out, err := os.ReadFile("testdata/runc-features.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseFeatures(out)
	if err != nil {
		t.Fatal(err)
	}
	if !f.RecursiveReadOnly || !f.IDMapMounts || !f.UserNamespaces || !f.Seccomp {
		t.Errorf("features %+v", f)
	}
	if f, err := ParseFeatures([]byte(`{"mountOptions":["ro"]}`)); err != nil || f.RecursiveReadOnly || f.Seccomp {
		t.Errorf("minimal features %+v %v", f, err)
	}
}

// TestSeccompDecidedByKernelNotProbe pins the seccomp decision: a runtime that did not answer `features` (crun
// 1.8) still gets the RuntimeDefault profile when the kernel has seccomp; a runtime that says it has none fails
// with FailedPrecondition; only a kernel without seccomp filters runs RuntimeDefault unconfined.
func TestSeccompDecidedByKernelNotProbe(t *testing.T) {
	for _, tc := range []struct {
		name      string
		kernel    bool
		runtime   Features
		want      bool
		precond   bool
		localhost bool
	}{
		{name: "no features command", kernel: true, runtime: Features{}, want: true},
		{name: "features say seccomp", kernel: true, runtime: Features{Known: true, Seccomp: true}, want: true},
		{name: "features say no seccomp", kernel: true, runtime: Features{Known: true}, precond: true},
		{name: "kernel without seccomp", kernel: false, runtime: Features{Known: true, Seccomp: true}, want: false},
		{name: "localhost, kernel without seccomp", kernel: false, runtime: Features{Known: true, Seccomp: true}, precond: true, localhost: true},
		{name: "localhost, no features command", kernel: true, runtime: Features{}, want: true, localhost: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testParams(t)
			p.Host.Seccomp, p.Runtime = tc.kernel, tc.runtime
			sc(&p).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
			if tc.localhost {
				prof := filepath.Join(t.TempDir(), "p.json")
				if err := os.WriteFile(prof, []byte(`{"defaultAction":"SCMP_ACT_LOG"}`), 0o644); err != nil {
					t.Fatal(err)
				}
				sc(&p).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: prof}
			}
			s, err := Build(p)
			if tc.precond {
				if !errors.Is(err, errdefs.ErrFailedPrecondition) {
					t.Fatalf("want FailedPrecondition, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Linux.Seccomp != nil; got != tc.want {
				t.Fatalf("seccomp set %v, want %v", got, tc.want)
			}
		})
	}
}

// TestWorkingDirUnderProcRefused: a working directory in /proc (CVE-2024-21626's /proc/self/fd/N), from the
// container config or the image, is InvalidArgument.
func TestWorkingDirUnderProcRefused(t *testing.T) {
	for _, tc := range []struct{ cfg, img string }{
		{"/proc/self/fd/7", ""}, {"/proc", ""}, {"//proc/../proc/1/cwd", ""}, {"", "/proc/self/fd/8"},
	} {
		p := testParams(t)
		p.Config.WorkingDir, p.Image.WorkingDir = tc.cfg, tc.img
		if _, err := Build(p); !errdefs.IsInvalidArgument(err) {
			t.Errorf("working dir %q (image %q): %v, want InvalidArgument", tc.cfg, tc.img, err)
		}
	}
	for _, ok := range []string{"/procfs", "/srv/proc", "/"} {
		p := testParams(t)
		p.Config.WorkingDir = ok
		if _, err := Build(p); err != nil {
			t.Errorf("working dir %q: %v", ok, err)
		}
	}
}

func TestImageVolumeMountIsReadOnlyPrivateBind(t *testing.T) {
	p := testParams(t)
	p.Config.Mounts = []*runtimeapi.Mount{
		// kubelet's shape: readonly set; a request without it is read-only all the same.
		{ContainerPath: "/vol", Image: &runtimeapi.ImageSpec{Image: "sha256:aaaa"}, MountOptions: []string{"noexec"}},
		{ContainerPath: "/sub", Image: &runtimeapi.ImageSpec{Image: "sha256:aaaa"}, ImageSubPath: "data", Readonly: true,
			Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
	}
	p.ImageVolumes = map[int]string{0: "/state/image-volumes/aaaa", 1: "/state/image-volumes/aaaa/data"}
	s := mustBuild(t, p)
	for dst, src := range map[string]string{"/vol": "/state/image-volumes/aaaa", "/sub": "/state/image-volumes/aaaa/data"} {
		m := findMount(s, dst)
		if m.Source != src || m.Type != "bind" {
			t.Errorf("%s: %+v, want a bind of %s", dst, m, src)
		}
		for _, o := range []string{"rbind", "rprivate", "ro", "nosuid", "nodev"} {
			if !slices.Contains(m.Options, o) {
				t.Errorf("%s: options %v lack %s", dst, m.Options, o)
			}
		}
		if slices.Contains(m.Options, "rw") || slices.Contains(m.Options, "rslave") {
			t.Errorf("%s: options %v", dst, m.Options)
		}
	}
	if m := findMount(s, "/vol"); !slices.Contains(m.Options, "noexec") {
		t.Errorf("mount_options not applied: %v", m.Options)
	}
	if s.Linux.RootfsPropagation != "" {
		t.Errorf("an image volume changed the rootfs propagation to %q", s.Linux.RootfsPropagation)
	}
}

func TestSpecVersion(t *testing.T) {
	for _, tc := range []struct {
		max  string
		want string
	}{
		{"", FallbackOCIVersion},
		{"1.1.0", "1.1.0"},
		{"1.0.2-dev", "1.0.2-dev"},
		{specs.Version, specs.Version},
		{"1.10.0", specs.Version}, // numeric, not string, order
		{"2.0.0", specs.Version},
	} {
		if got := SpecVersion(tc.max); got != tc.want {
			t.Errorf("SpecVersion(%q) = %q, want %q", tc.max, got, tc.want)
		}
	}
}
