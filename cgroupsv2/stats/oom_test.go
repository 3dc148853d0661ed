package stats

import (
	"path/filepath"
	"testing"

	"github.com/noded/noded/errdefs"
)

func TestOOMKills(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, filepath.Join(root, "pod", "killed"), map[string]string{
		"memory.events": "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n",
	})
	writeFiles(t, filepath.Join(root, "pod", "fine"), map[string]string{
		"memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
	})
	writeFiles(t, filepath.Join(root, "pod", "nomemctl"), map[string]string{"cgroup.procs": ""})
	writeFiles(t, filepath.Join(root, "memory", "pod", "killed"), map[string]string{
		"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
	})

	v2 := NewReader(root, true)
	for path, want := range map[string]uint64{"/pod/killed": 1, "/pod/fine": 0} {
		if n, err := v2.OOMKills(path); err != nil || n != want {
			t.Errorf("v2 OOMKills(%s) = %d, %v; want %d", path, n, err, want)
		}
	}
	if _, err := v2.OOMKills("/pod/gone"); !errdefs.IsNotFound(err) {
		t.Errorf("v2 OOMKills of a removed cgroup = %v, want NotFound", err)
	}
	if _, err := v2.OOMKills("/pod/nomemctl"); !errdefs.IsNotFound(err) {
		t.Errorf("v2 OOMKills without the memory controller = %v, want NotFound", err)
	}
	if _, err := v2.OOMKills("pod/killed"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("relative path = %v, want InvalidArgument", err)
	}

	v1 := NewReader(root, false)
	if n, err := v1.OOMKills("/pod/killed"); err != nil || n != 3 {
		t.Errorf("v1 OOMKills = %d, %v; want 3", n, err)
	}
	if _, err := v1.OOMKills("/pod/gone"); !errdefs.IsNotFound(err) {
		t.Errorf("v1 OOMKills of a removed cgroup = %v, want NotFound", err)
	}
}
