package features

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/internal/nsutil"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == nsutil.HoldCommand {
		os.Exit(nsutil.Hold())
	}
	os.Exit(m.Run())
}

// fakeProbes answers with a fixed kernel and probe results, and counts the probe calls.
type fakeProbes struct {
	release      string
	rro, idmap   error
	rroN, idmapN int
}

func (f *fakeProbes) probes() Probes {
	return Probes{
		KernelRelease:     func() (string, error) { return f.release, nil },
		RecursiveReadOnly: func(string) error { f.rroN++; return f.rro },
		IDMappedOverlay:   func(context.Context, string) error { f.idmapN++; return f.idmap },
	}
}

func TestProbeHost(t *testing.T) {
	for _, tc := range []struct {
		name           string
		fake           fakeProbes
		rro, idmap     bool
		rroWhy, idmWhy string // substrings of the reasons
		probesRun      int    // rro + idmap probe calls
	}{
		{name: "new kernel, probes pass", fake: fakeProbes{release: "6.18.44-fc-v1045"}, rro: true, idmap: true, probesRun: 2},
		{name: "5.12 has rro, not ID-mapped overlays", fake: fakeProbes{release: "5.12.0"}, rro: true,
			idmWhy: "older than 5.19", probesRun: 1},
		{name: "5.11 has neither, probes not run", fake: fakeProbes{release: "5.11.22-generic"},
			rroWhy: "older than 5.12", idmWhy: "older than 5.19"},
		{name: "5.4 debian style release", fake: fakeProbes{release: "5.4.0-150-generic"}, rroWhy: "older than 5.12", idmWhy: "5.19"},
		{name: "filesystem refuses ID-mapped mounts", fake: fakeProbes{release: "6.1.0-18-amd64", idmap: errors.New("EINVAL")},
			rro: true, idmWhy: "EINVAL", probesRun: 2},
		{name: "mount_setattr fails", fake: fakeProbes{release: "6.1.0", rro: errors.New("ENOSYS")},
			rroWhy: "ENOSYS", idmap: true, probesRun: 2},
		{name: "unparsable release", fake: fakeProbes{release: "weird"}, rroWhy: "not understood", idmWhy: "not understood"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := ProbeHost(context.Background(), tc.fake.probes(), "/snapshots")
			if h.RecursiveReadOnly != tc.rro || h.IDMappedMounts != tc.idmap {
				t.Errorf("rro %v idmap %v, want %v %v (reasons %v)", h.RecursiveReadOnly, h.IDMappedMounts, tc.rro, tc.idmap, h.Reasons)
			}
			if !strings.Contains(h.Reasons[FeatureRecursiveReadOnly], tc.rroWhy) || (tc.rroWhy == "") != (h.Reasons[FeatureRecursiveReadOnly] == "") {
				t.Errorf("rro reason %q, want one with %q", h.Reasons[FeatureRecursiveReadOnly], tc.rroWhy)
			}
			if !strings.Contains(h.Reasons[FeatureIDMapMounts], tc.idmWhy) || (tc.idmWhy == "") != (h.Reasons[FeatureIDMapMounts] == "") {
				t.Errorf("idmap reason %q, want one with %q", h.Reasons[FeatureIDMapMounts], tc.idmWhy)
			}
			if n := tc.fake.rroN + tc.fake.idmapN; n != tc.probesRun {
				t.Errorf("%d probes ran, want %d", n, tc.probesRun)
			}
		})
	}
}

func TestProbeHostKernelUnknown(t *testing.T) {
	h := ProbeHost(context.Background(), Probes{KernelRelease: func() (string, error) { return "", errors.New("no uname") }}, "/x")
	if h.RecursiveReadOnly || h.IDMappedMounts || !strings.Contains(h.Reasons[FeatureIDMapMounts], "no uname") {
		t.Errorf("host %+v, want nothing and the reason", h)
	}
}

func TestCombine(t *testing.T) {
	full := Host{RecursiveReadOnly: true, IDMappedMounts: true}
	all := Runtime{RecursiveReadOnly: true, UserNamespaces: true, IDMapMounts: true}
	for _, tc := range []struct {
		name        string
		h           Host
		r           Runtime
		rro, userns bool
		usernsWhy   string
	}{
		{name: "both have everything", h: full, r: all, rro: true, userns: true},
		{name: "runtime without rro", h: full, r: Runtime{UserNamespaces: true, IDMapMounts: true}, userns: true},
		{name: "old kernel, runtime has rro", h: Host{IDMappedMounts: true, Reasons: map[string]string{FeatureRecursiveReadOnly: "kernel 5.10 is older than 5.12"}},
			r: all, userns: true},
		{name: "runtime without idmap mounts", h: full, r: Runtime{RecursiveReadOnly: true, UserNamespaces: true}, rro: true,
			usernsWhy: "runtime does not support ID-mapped mounts"},
		{name: "runtime without user namespaces", h: full, r: Runtime{RecursiveReadOnly: true, IDMapMounts: true}, rro: true,
			usernsWhy: "does not support user namespaces"},
		{name: "filesystem without idmap", h: Host{RecursiveReadOnly: true, Reasons: map[string]string{FeatureIDMapMounts: "ID-mapped mount on /s: EINVAL"}},
			r: all, rro: true, usernsWhy: "EINVAL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Combine(tc.h, tc.r)
			if got.RecursiveReadOnly != tc.rro || got.UserNamespaces != tc.userns {
				t.Errorf("rro %v userns %v, want %v %v (%v)", got.RecursiveReadOnly, got.UserNamespaces, tc.rro, tc.userns, got.Reasons)
			}
			if !strings.Contains(got.Reasons[FeatureUserNamespaces], tc.usernsWhy) {
				t.Errorf("userns reason %q, want one with %q", got.Reasons[FeatureUserNamespaces], tc.usernsWhy)
			}
			if tc.h.Reasons[FeatureRecursiveReadOnly] != "" && got.Reasons[FeatureRecursiveReadOnly] != tc.h.Reasons[FeatureRecursiveReadOnly] {
				t.Errorf("rro reason %q, want the host's", got.Reasons[FeatureRecursiveReadOnly])
			}
		})
	}
}

// TestRealProbesOnThisHost runs the real probes in a scratch directory (root only) and checks they leave
// nothing behind. On this machine's kernel (>= 5.19, ext4 or tmpfs) both features are expected.
func TestRealProbesOnThisHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	h := ProbeHost(context.Background(), RealProbes(), dir)
	t.Logf("host features: %+v", h)
	if v, ok := parseRelease(h.Kernel); ok && atLeast(v, minIDMappedOverlay) && (!h.RecursiveReadOnly || !h.IDMappedMounts) {
		t.Errorf("kernel %s: want both features, got %+v", h.Kernel, h)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("probe left %v in its directory (%v)", entries, err)
	}
}

// TestRealProbeRemovesStaleProbe leaves a probe's overlay mounted, as a noded killed mid-probe would, and checks
// that the next probe unmounts and removes it.
func TestRealProbeRemovesStaleProbe(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	stale := filepath.Join(dir, probePrefix+"stale")
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(stale, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := "lowerdir=" + filepath.Join(stale, "lower") + ",upperdir=" + filepath.Join(stale, "upper") + ",workdir=" + filepath.Join(stale, "work")
	if err := unix.Mount("overlay", filepath.Join(stale, "merged"), "overlay", 0, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(stale, "merged"), unix.MNT_DETACH) })
	if err := probeIDMappedOverlay(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %v", entries)
	}
}
