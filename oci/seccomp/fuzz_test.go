package seccomp

import (
	"path/filepath"
	"syscall"
	"testing"

	"github.com/noded/noded/errdefs"
)

// FuzzProfile: any profile document parses to a profile or a clean error, and a parsed one converts to an OCI
// seccomp config or a clean error, never a panic.
func FuzzProfile(f *testing.F) {
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}],"includes":{"caps":["CAP_SYS_ADMIN"],"minKernel":"4.8"}}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_KILL","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}]}`))
	f.Add([]byte(`{"defaultAction":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			return
		}
		for _, kernel := range []string{"", "6.1.0"} {
			_, _ = p.ToOCI(Target{Caps: []string{"CAP_SYS_ADMIN"}, Kernel: kernel})
		}
	})
}

// TestLoadRefusesSpecialFiles: a localhost profile path naming a device or a FIFO gives an error at once
// instead of reading forever or blocking.
func TestLoadRefusesSpecialFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	for _, p := range []string{"/dev/zero", fifo, "/"} {
		if _, err := Load(p); err == nil {
			t.Errorf("Load(%s) succeeded", p)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); !errdefs.IsNotFound(err) {
		t.Errorf("Load of a missing file: %v, want NotFound", err)
	}
}
