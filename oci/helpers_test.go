package oci

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

func mknodChar(path string, major, minor uint32) error {
	return unix.Mknod(path, unix.S_IFCHR|0o666, int(unix.Mkdev(major, minor)))
}

func errorsIsFailedPrecondition(err error) bool { return errors.Is(err, errdefs.ErrFailedPrecondition) }

func TestDetectHost(t *testing.T) {
	h, err := DetectHost()
	if err != nil {
		t.Fatal(err)
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if h.NofileMax != rl.Max || h.Kernel == "" || h.Capabilities == 0 || h.OOMScoreAdjMin < -1000 || h.OOMScoreAdjMin > 1000 {
		t.Fatalf("host %+v", h)
	}
	if h.AppArmor != AppArmorEnabled() {
		t.Fatalf("apparmor mismatch")
	}
}
