package container

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/noded/noded/cgroupsv2"
	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/ociruntime"
	"github.com/noded/noded/store"
)

// oomRuntime is a runtime whose conmon never saw an OOM kill (the systemd case: the scope was gone first).
type oomRuntime struct {
	ociruntime.Runtime
	conmonSaw bool
}

func (r oomRuntime) OOMKilled(string) bool { return r.conmonSaw }

func setEvents(t *testing.T, dir string, oomKills int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	content := "low 0\nhigh 0\nmax 3\noom 1\noom_kill " + strconv.Itoa(oomKills) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "memory.events"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOOMKilledOnceTheScopeIsGone(t *testing.T) {
	const sigkill = 137
	root := t.TempDir()
	driver, err := cgroupsv2.New(cgroupsv2.DriverSystemd, "")
	if err != nil {
		t.Fatal(err)
	}
	parent := filepath.Join(root, "/pods.slice/pods-pod1.slice")
	newManager := func(conmonSaw bool) *Manager {
		return &Manager{cfg: Config{
			Runtimes: map[string]ociruntime.Runtime{"runc": oomRuntime{conmonSaw: conmonSaw}}, DefaultRuntime: "runc",
			Cgroups: driver, CgroupReader: cgstats.NewReader(root, true),
		}}
	}
	c := &store.Container{ID: "c1", Runtime: "runc", CgroupsPath: "pods-pod1.slice:noded:c1"}
	scope := filepath.Join(parent, "noded-c1.scope")

	for _, tc := range []struct {
		name           string
		conmonSaw      bool
		scopeKills     int // -1: the scope is gone
		parentAfter    int // the parent's counter at exit (1 at start)
		exitCode       int
		stoppedByNoded bool
		want           bool
	}{
		{"conmon saw it", true, -1, 1, sigkill, false, true},
		{"scope still there with a kill", false, 1, 2, sigkill, false, true},
		{"scope still there without a kill", false, 0, 2, sigkill, false, false},
		{"scope gone, parent counted one more", false, -1, 2, sigkill, false, true},
		{"scope gone, parent unchanged", false, -1, 1, sigkill, false, false},
		{"scope gone, exit not by SIGKILL", false, -1, 2, 1, false, false},
		{"scope gone, noded stopped it", false, -1, 2, sigkill, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.RemoveAll(filepath.Join(root, "pods.slice"))
			setEvents(t, parent, 1)
			setEvents(t, scope, 0)
			m := newManager(tc.conmonSaw)
			m.oom.starting(m, c)
			if tc.stoppedByNoded {
				m.oom.stopping(c.ID)
			}
			if tc.scopeKills < 0 {
				if err := os.RemoveAll(scope); err != nil {
					t.Fatal(err)
				}
			} else {
				setEvents(t, scope, tc.scopeKills)
			}
			setEvents(t, parent, tc.parentAfter)
			if got := m.oomKilled(c, tc.exitCode); got != tc.want {
				t.Errorf("oomKilled = %v, want %v", got, tc.want)
			}
			if _, has, _ := m.oom.take(c.ID); has {
				t.Error("the start sample outlived the exit")
			}
		})
	}
}
