package oci

import (
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The security invariants of every spec Build accepts for an unprivileged container, stated without Build's
// own helpers (an independent model of the CRI rules):
//   - seccomp is set unless the request says Unconfined (or names no profile at all, which the CRI defines
//     as unconfined);
//   - the masked and read-only paths are the defaults, unless the request lists its own (kubelet sends the
//     defaults, or others for procMount);
//   - no capability outside the requested set (defaults or ALL, plus adds and ambient adds) is in any set,
//     a dropped one in none, and effective ⊆ permitted ⊆ bounding, ambient ⊆ inheritable ∩ permitted;
//   - /sys and /sys/fs/cgroup are read-only, /proc is a proc mount, there is a mount namespace;
//   - no_new_privs is what was asked;
//   - RuntimeDefault AppArmor (or none named) gets the default profile where AppArmor is enabled, and no
//     profile is set where it is not;
//   - on a host where SELinux enforces, nothing that asks for a label was accepted.
func checkSecurityInvariants(t *testing.T, p Params, s *specs.Spec) {
	t.Helper()
	sc := p.Config.GetLinux().GetSecurityContext()
	if sc.GetPrivileged() {
		if !p.SandboxConfig.GetLinux().GetSecurityContext().GetPrivileged() {
			t.Fatal("privileged container accepted in an unprivileged sandbox")
		}
		return
	}
	if wantsSeccomp(sc) && s.Linux.Seccomp == nil {
		t.Fatalf("no seccomp profile for %v", sc.GetSeccomp())
	}
	// The defaults as kubelet and the other runtimes have them, written out (not DefaultMaskedPaths()): a path
	// dropped from the package's list must fail here.
	wantMasked := []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		"/sys/devices/virtual/powercap"}
	wantRO := []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
	if len(sc.GetMaskedPaths()) > 0 {
		wantMasked = sc.GetMaskedPaths()
	}
	if len(sc.GetReadonlyPaths()) > 0 {
		wantRO = sc.GetReadonlyPaths()
	}
	if !slices.Equal(s.Linux.MaskedPaths, wantMasked) || !slices.Equal(s.Linux.ReadonlyPaths, wantRO) {
		t.Fatalf("masked %v read-only %v, want %v and %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, wantMasked, wantRO)
	}
	if s.Linux.MaskedPaths == nil || s.Linux.ReadonlyPaths == nil {
		t.Fatal("masked or read-only paths missing")
	}

	allowed, dropped := requestedCaps(sc.GetCapabilities())
	c := s.Process.Capabilities
	if c == nil {
		t.Fatal("no capabilities section")
	}
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted,
		"inheritable": c.Inheritable, "ambient": c.Ambient} {
		for _, cp := range set {
			if !allowed[cp] || dropped[cp] {
				t.Fatalf("%s capability %s was not requested (add %v, drop %v, ambient %v)", name, cp,
					sc.GetCapabilities().GetAddCapabilities(), sc.GetCapabilities().GetDropCapabilities(),
					sc.GetCapabilities().GetAddAmbientCapabilities())
			}
		}
	}
	subset := func(a, b []string) bool {
		for _, x := range a {
			if !slices.Contains(b, x) {
				return false
			}
		}
		return true
	}
	if !subset(c.Effective, c.Permitted) || !subset(c.Permitted, c.Bounding) || !subset(c.Ambient, c.Inheritable) || !subset(c.Ambient, c.Permitted) {
		t.Fatalf("inconsistent capability sets %+v", c)
	}

	var proc, sys, cgroup bool
	for _, m := range s.Mounts {
		switch m.Destination {
		case "/proc":
			proc = m.Type == "proc"
		case "/sys":
			sys = slices.Contains(m.Options, "ro")
		case "/sys/fs/cgroup":
			cgroup = slices.Contains(m.Options, "ro")
		}
	}
	if !proc || !sys || !cgroup {
		t.Fatalf("/proc proc %v, /sys ro %v, /sys/fs/cgroup ro %v: %+v", proc, sys, cgroup, s.Mounts)
	}
	if !slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.MountNamespace && n.Path == "" }) {
		t.Fatalf("no new mount namespace: %v", s.Linux.Namespaces)
	}
	if s.Process.NoNewPrivileges != sc.GetNoNewPrivs() {
		t.Fatalf("no_new_privs %v, asked %v", s.Process.NoNewPrivileges, sc.GetNoNewPrivs())
	}

	switch {
	case !p.Host.AppArmor && s.Process.ApparmorProfile != "":
		t.Fatalf("AppArmor profile %q on a host without AppArmor", s.Process.ApparmorProfile)
	case p.Host.AppArmor && wantsDefaultAppArmor(sc) && s.Process.ApparmorProfile != p.AppArmorDefaultProfile:
		t.Fatalf("AppArmor profile %q, want the default %q", s.Process.ApparmorProfile, p.AppArmorDefaultProfile)
	}
	if p.Host.SELinux == SELinuxEnforcing {
		podOpts := p.SandboxConfig.GetLinux().GetSecurityContext().GetSelinuxOptions()
		if hasLabel(sc.GetSelinuxOptions()) || hasLabel(podOpts) ||
			slices.ContainsFunc(p.Config.GetMounts(), func(m *runtimeapi.Mount) bool { return m.GetSelinuxRelabel() }) {
			t.Fatal("an SELinux label was accepted (and ignored) on an enforcing host")
		}
	}
}

func hasLabel(o *runtimeapi.SELinuxOption) bool {
	return o != nil && (o.User != "" || o.Role != "" || o.Type != "" || o.Level != "")
}

// wantsSeccomp reports whether the request asks for a seccomp profile (anything but Unconfined or nothing).
func wantsSeccomp(sc *runtimeapi.LinuxContainerSecurityContext) bool {
	if p := sc.GetSeccomp(); p != nil {
		return p.GetProfileType() != runtimeapi.SecurityProfile_Unconfined
	}
	//lint:ignore SA1019 the deprecated field is part of the model
	v := sc.GetSeccompProfilePath()
	return v != "" && v != "unconfined"
}

// wantsDefaultAppArmor reports whether the request means RuntimeDefault AppArmor (also when it names none).
func wantsDefaultAppArmor(sc *runtimeapi.LinuxContainerSecurityContext) bool {
	if p := sc.GetApparmor(); p != nil {
		return p.GetProfileType() == runtimeapi.SecurityProfile_RuntimeDefault
	}
	//lint:ignore SA1019 the deprecated field is part of the model
	v := sc.GetApparmorProfile()
	return v == "" || v == "runtime/default" || v == "docker/default"
}

// requestedCaps returns the capabilities a request may end up with and those it dropped (and did not add back
// as ambient).
func requestedCaps(c *runtimeapi.Capability) (allowed, dropped map[string]bool) {
	norm := func(s string) string {
		s = strings.ToUpper(strings.TrimSpace(s))
		if !strings.HasPrefix(s, "CAP_") {
			s = "CAP_" + s
		}
		return s
	}
	all := func(l []string) bool {
		return slices.ContainsFunc(l, func(s string) bool { return strings.EqualFold(strings.TrimSpace(s), "ALL") })
	}
	allowed, dropped = map[string]bool{}, map[string]bool{}
	if !all(c.GetDropCapabilities()) {
		base := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
			"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
			"CAP_KILL", "CAP_AUDIT_WRITE"}
		if all(c.GetAddCapabilities()) {
			base = capabilityNames[:]
		}
		for _, x := range base {
			allowed[x] = true
		}
	}
	for _, a := range c.GetAddCapabilities() {
		allowed[norm(a)] = true
	}
	ambient := map[string]bool{}
	for _, a := range c.GetAddAmbientCapabilities() {
		allowed[norm(a)], ambient[norm(a)] = true, true
	}
	for _, d := range c.GetDropCapabilities() {
		if n := norm(d); !ambient[n] && n != "CAP_ALL" {
			dropped[n] = true
		}
	}
	return allowed, dropped
}

// hostVariant sets the host facts from bits: AppArmor on/off (with or without the default profile loaded) and
// the SELinux mode.
func hostVariant(p *Params, bits uint8) {
	p.Host.AppArmor = bits&1 != 0
	p.AppArmorDefaultProfile = ""
	if bits&2 == 0 {
		p.AppArmorDefaultProfile = "noded-default"
	}
	p.Host.SELinux = []SELinuxMode{SELinuxDisabled, SELinuxPermissive, SELinuxEnforcing, SELinuxDisabled}[(bits>>2)&3]
}

// FuzzBuildSecurity checks checkSecurityInvariants on every spec Build accepts for fuzzed container and pod
// configs on fuzzed hosts (AppArmor, SELinux).
func FuzzBuildSecurity(f *testing.F) {
	rd := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	seeds := []*runtimeapi.LinuxContainerSecurityContext{
		{},
		{Seccomp: rd, Apparmor: rd, NoNewPrivs: true},
		{Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"ALL"}, DropCapabilities: []string{"net_raw", "CAP_MKNOD"}}, Seccomp: rd},
		{Capabilities: &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_BIND_SERVICE"},
			AddAmbientCapabilities: []string{"net_bind_service", "sys_time"}}, RunAsUser: &runtimeapi.Int64Value{Value: 1000}},
		{Capabilities: &runtimeapi.Capability{AddCapabilities: []string{" sys_admin "}, DropCapabilities: []string{"SYS_ADMIN"}},
			MaskedPaths: []string{"/proc/kcore"}, ReadonlyPaths: []string{"/proc/sys"}},
		{SeccompProfilePath: "runtime/default", ApparmorProfile: "unconfined"},
		{Apparmor: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "custom"},
			SelinuxOptions: &runtimeapi.SELinuxOption{Type: "container_t"}},
		{Privileged: true, Seccomp: rd},
	}
	pods := []*runtimeapi.PodSandboxConfig{
		{Metadata: &runtimeapi.PodSandboxMetadata{Name: "pod", Namespace: "ns", Uid: "u"}},
		{Metadata: &runtimeapi.PodSandboxMetadata{Name: "pod", Namespace: "ns", Uid: "u"},
			Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				Privileged: true, SelinuxOptions: &runtimeapi.SELinuxOption{Level: "s0"}}}},
	}
	for i, sc := range seeds {
		ctr, err := proto.Marshal(&runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
			Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: sc},
		})
		if err != nil {
			f.Fatal(err)
		}
		pod, err := proto.Marshal(pods[i%len(pods)])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ctr, pod, uint8(i))
	}
	base := testParams(f)
	f.Fuzz(func(t *testing.T, ctrData, podData []byte, host uint8) {
		p := base
		p.Config, p.SandboxConfig = &runtimeapi.ContainerConfig{}, &runtimeapi.PodSandboxConfig{}
		if proto.Unmarshal(ctrData, p.Config) != nil || proto.Unmarshal(podData, p.SandboxConfig) != nil {
			return
		}
		hostVariant(&p, host)
		s, err := Build(p)
		if err != nil {
			return
		}
		checkSecurityInvariants(t, p, s)
	})
}

// TestBuildSecurityProperties checks checkSecurityInvariants over many random but well-formed requests (the
// fuzzer rarely builds valid capability names on its own), with a fixed seed so that a failure repeats.
func TestBuildSecurityProperties(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "seccomp.json")
	if err := os.WriteFile(prof, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	capPool := []string{"ALL", "all", "net_admin", "CAP_SYS_ADMIN", " sys_time ", "chown", "CAP_NET_RAW", "mknod",
		"SYS_PTRACE", "bpf", "CAP_KILL", "setuid", "dac_read_search"}
	profiles := []*runtimeapi.SecurityProfile{nil,
		{ProfileType: runtimeapi.SecurityProfile_Unconfined},
		{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
		{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: prof},
	}
	labels := []*runtimeapi.SELinuxOption{nil, {}, {Type: "container_t"}, {User: "system_u", Level: "s0:c1"}}
	r := rand.New(rand.NewSource(15))
	pick := func(n int) []string {
		var out []string
		for i := r.Intn(n + 1); i > 0; i-- {
			out = append(out, capPool[r.Intn(len(capPool))])
		}
		return out
	}
	base := testParams(t)
	accepted := 0
	for i := 0; i < 3000; i++ {
		p := base
		sc := &runtimeapi.LinuxContainerSecurityContext{
			Capabilities: &runtimeapi.Capability{AddCapabilities: pick(3), DropCapabilities: pick(3), AddAmbientCapabilities: pick(2)},
			Seccomp:      profiles[r.Intn(len(profiles))],
			Apparmor:     profiles[r.Intn(3)],
			NoNewPrivs:   r.Intn(2) == 0,
			Privileged:   r.Intn(8) == 0,
		}
		if sc.Seccomp == nil && r.Intn(2) == 0 {
			//lint:ignore SA1019 the deprecated field is still sent by older kubelets
			sc.SeccompProfilePath = []string{"", "unconfined", "runtime/default", "docker/default", "localhost/" + prof}[r.Intn(5)]
		}
		if sc.Apparmor == nil && r.Intn(2) == 0 {
			//lint:ignore SA1019 the deprecated field is still sent by older kubelets
			sc.ApparmorProfile = []string{"", "unconfined", "runtime/default", "localhost/custom"}[r.Intn(4)]
		}
		switch r.Intn(4) {
		case 0:
			sc.MaskedPaths, sc.ReadonlyPaths = []string{"/proc/kcore"}, []string{"/proc/sys", "/proc/bus"}
		case 1:
			sc.MaskedPaths, sc.ReadonlyPaths = []string{}, []string{}
		}
		if r.Intn(2) == 0 {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: int64(r.Intn(2) * 1000)}
		}
		sc.SelinuxOptions = labels[r.Intn(len(labels))]
		p.Config = &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
			Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: sc},
		}
		if r.Intn(4) == 0 {
			p.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: base.RootfsPath, SelinuxRelabel: r.Intn(2) == 0}}
		}
		p.SandboxConfig = &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "pod", Namespace: "ns", Uid: "u"},
			Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				Privileged: r.Intn(2) == 0, SelinuxOptions: labels[r.Intn(len(labels))],
			}},
		}
		hostVariant(&p, uint8(r.Intn(16)))
		s, err := Build(p)
		if err != nil {
			continue
		}
		accepted++
		checkSecurityInvariants(t, p, s)
		if t.Failed() {
			t.Fatalf("request %d: %v", i, sc)
		}
	}
	// The generator must mostly produce accepted requests, or the invariants are checked on too few.
	if accepted < 1000 {
		t.Fatalf("only %d of 3000 random requests were accepted", accepted)
	}
	t.Logf("%d of 3000 random requests accepted and checked", accepted)
}
