package rootfshook

import (
	"io"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRemountFlagsDropOnlyNosuidNodev(t *testing.T) {
	got := RemountFlags(unix.ST_RDONLY | unix.ST_NOSUID | unix.ST_NODEV | unix.ST_NOEXEC | unix.ST_RELATIME)
	want := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOEXEC | unix.MS_RELATIME)
	if got != want {
		t.Fatalf("flags %#x, want %#x", got, want)
	}
	if got := RemountFlags(unix.ST_NOSUID | unix.ST_NODEV); got&(unix.MS_NOSUID|unix.MS_NODEV) != 0 {
		t.Fatalf("flags %#x keep nosuid/nodev", got)
	}
}

func TestRunRejectsBadArgs(t *testing.T) {
	for _, args := range [][]string{nil, {"relative"}, {"/a", "/b"}} {
		if Run(args, io.Discard) != 2 {
			t.Errorf("Run(%q) accepted", args)
		}
	}
}
