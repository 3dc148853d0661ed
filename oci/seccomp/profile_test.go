package seccomp

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

// allowed reports whether name is allowed unconditionally (no argument filter) by the profile.
func allowed(s *specs.LinuxSeccomp, name string) bool {
	for _, r := range s.Syscalls {
		if r.Action == specs.ActAllow && len(r.Args) == 0 && slices.Contains(r.Names, name) {
			return true
		}
	}
	return false
}

func TestDefaultProfile(t *testing.T) {
	plain, err := DefaultProfile().ToOCI(Target{Arch: "amd64", Caps: []string{"CAP_CHOWN", "CAP_SYS_CHROOT"}})
	if err != nil {
		t.Fatal(err)
	}
	if plain.DefaultAction != specs.ActErrno || plain.DefaultErrnoRet == nil || *plain.DefaultErrnoRet != 1 {
		t.Fatalf("default action: %v %v", plain.DefaultAction, plain.DefaultErrnoRet)
	}
	if !slices.Equal(plain.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}) {
		t.Fatalf("architectures %v", plain.Architectures)
	}
	for _, name := range []string{"read", "execve", "openat", "futex", "chroot", "ptrace", "sethostname"} {
		if !allowed(plain, name) {
			t.Errorf("%s should be allowed", name)
		}
	}
	blocked := []string{"keyctl", "add_key", "request_key", "mount", "umount2", "reboot", "swapon", "swapoff",
		"kexec_load", "init_module", "finit_module", "delete_module", "acct", "settimeofday", "clock_settime", "bpf",
		"perf_event_open", "userfaultfd", "open_by_handle_at", "name_to_handle_at", "pivot_root", "setns", "unshare",
		"io_uring_setup", "personality", "clone", "socket"}
	for _, name := range blocked {
		if allowed(plain, name) {
			t.Errorf("%s must not be allowed unconditionally", name)
		}
	}
	// clone is allowed only without namespace flags; clone3 gets ENOSYS.
	var cloneOK, clone3Enosys bool
	for _, r := range plain.Syscalls {
		if slices.Contains(r.Names, "clone") && len(r.Args) == 1 && r.Args[0].Op == specs.OpMaskedEqual &&
			r.Args[0].Value&0x40000000 != 0 && r.Args[0].ValueTwo == 0 {
			cloneOK = true
		}
		if slices.Contains(r.Names, "clone3") && r.Action == specs.ActErrno && *r.ErrnoRet == 38 {
			clone3Enosys = true
		}
	}
	if !cloneOK || !clone3Enosys {
		t.Fatalf("clone rule %v clone3 rule %v", cloneOK, clone3Enosys)
	}

	admin, err := DefaultProfile().ToOCI(Target{Arch: "arm64", Caps: []string{"CAP_SYS_ADMIN"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(admin.Architectures, []specs.Arch{specs.ArchAARCH64, specs.ArchARM}) {
		t.Fatalf("arm64 architectures %v", admin.Architectures)
	}
	for _, name := range []string{"mount", "unshare", "setns", "clone", "clone3"} {
		if !allowed(admin, name) {
			t.Errorf("%s should be allowed with CAP_SYS_ADMIN", name)
		}
	}
	for _, name := range []string{"keyctl", "chroot", "reboot"} {
		if allowed(admin, name) {
			t.Errorf("%s should not be allowed with only CAP_SYS_ADMIN", name)
		}
	}
	for _, r := range admin.Syscalls {
		if slices.Contains(r.Names, "clone3") && r.Action != specs.ActAllow {
			t.Errorf("clone3 ENOSYS rule kept despite CAP_SYS_ADMIN")
		}
	}
}

func TestFilters(t *testing.T) {
	p := &Profile{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls: []Syscall{
			{Name: "a", Action: specs.ActAllow, Includes: &Filter{Arches: []string{"arm64"}}},
			{Names: []string{"b"}, Action: specs.ActAllow, Includes: &Filter{MinKernel: "99.0"}},
			{Names: []string{"c"}, Action: specs.ActAllow, Includes: &Filter{MinKernel: "4.8"}},
			{Names: []string{"d"}, Action: specs.ActAllow, Excludes: &Filter{Caps: []string{"CAP_X"}}},
			{Names: []string{"e"}, Action: specs.ActAllow, Includes: &Filter{Caps: []string{"CAP_X", "CAP_Y"}}},
		},
	}
	got, err := p.ToOCI(Target{Arch: "amd64", Kernel: "6.1.0-18-amd64", Caps: []string{"CAP_X"}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range got.Syscalls {
		names = append(names, r.Names...)
	}
	if !slices.Equal(names, []string{"c"}) {
		t.Fatalf("got rules %v, want [c]", names)
	}
}

func TestKernelAtLeast(t *testing.T) {
	for _, tc := range []struct {
		rel, min string
		want     bool
	}{
		{"6.1.0-18-amd64", "4.8", true}, {"4.8.0", "4.8", true}, {"4.7.10", "4.8", false},
		{"5.10", "5.10.1", false}, {"6.18.44-fc", "6.18.44", true},
	} {
		if got := kernelAtLeast(tc.rel, tc.min); got != tc.want {
			t.Errorf("kernelAtLeast(%q, %q) = %v", tc.rel, tc.min, got)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
		"syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}]}`)
	p, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.ToOCI(Target{Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(s)
	want := `{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],"syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}]}`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}

	for name, content := range map[string]string{
		"notjson":   `{`,
		"noaction":  `{"syscalls":[]}`,
		"badaction": `{"defaultAction":"SCMP_ACT_BOGUS"}`,
		"badop":     `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["x"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"op":"LIKE"}]}]}`,
		"nonames":   `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"action":"SCMP_ACT_ALLOW"}]}`,
	} {
		p, err := Load(write(name, content))
		if err == nil {
			_, err = p.ToOCI(Target{})
		}
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: want InvalidArgument, got %v", name, err)
		}
	}
	if _, err := Load("relative.json"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("relative path: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); !errdefs.IsNotFound(err) {
		t.Errorf("missing file: %v", err)
	}
}

// socketAllowed evaluates the profile's socket rules for a family (first argument) as the kernel filter would:
// an allow rule whose every comparison holds.
func socketAllowed(p *specs.LinuxSeccomp, family uint64) bool {
	for _, r := range p.Syscalls {
		if !slices.Contains(r.Names, "socket") || r.Action != specs.ActAllow {
			continue
		}
		ok := true
		for _, a := range r.Args {
			if a.Index != 0 {
				ok = false
				continue
			}
			switch a.Op {
			case specs.OpLessThan:
				ok = ok && family < a.Value
			case specs.OpEqualTo:
				ok = ok && family == a.Value
			case specs.OpGreaterThan:
				ok = ok && family > a.Value
			case specs.OpNotEqual:
				ok = ok && family != a.Value
			case specs.OpMaskedEqual:
				ok = ok && family&a.Value == a.ValueTwo
			default:
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// TestDefaultProfileBlocksVsockAndAlg: socket(AF_VSOCK) and socket(AF_ALG) are denied, also with high bits set
// in the register (the kernel reads only the low 32); the families containers use are allowed.
func TestDefaultProfileBlocksVsockAndAlg(t *testing.T) {
	p, err := DefaultProfile().ToOCI(Target{Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []uint64{unix.AF_UNIX, unix.AF_INET, unix.AF_INET6, unix.AF_NETLINK, unix.AF_PACKET, unix.AF_NFC, unix.AF_XDP, unix.AF_MCTP} {
		if !socketAllowed(p, f) {
			t.Errorf("socket(%d) denied", f)
		}
	}
	for _, f := range []uint64{unix.AF_ALG, unix.AF_VSOCK, 1<<32 | unix.AF_ALG, 1<<32 | unix.AF_VSOCK, 1<<63 | unix.AF_VSOCK} {
		if socketAllowed(p, f) {
			t.Errorf("socket(%#x) allowed", f)
		}
	}
}
