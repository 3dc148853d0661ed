package container

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/noded/noded/cgroupsv2/stats"
)

// killCgroup kills every process left in a container's cgroup and removes the cgroup, in every mounted
// hierarchy. It is for containers whose runtime state is lost: the runtime cannot stop or delete them any more,
// but their processes may still run. A cgroup that does not exist is fine.
func killCgroup(cgroupsPath string) error {
	rel, err := stats.ResolvePath(cgroupsPath)
	if err != nil || rel == "/" {
		return err
	}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*")
	dirs = append(dirs, "/sys/fs/cgroup")
	var errs []error
	for _, h := range dirs {
		dir := filepath.Join(h, rel)
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
			continue
		}
		for i := 0; i < 50; i++ {
			pids := cgroupProcs(dir)
			if len(pids) == 0 {
				break
			}
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		klog.V(2).InfoS("cgroup of a lost container not fully removed", "cgroupsPath", cgroupsPath, "err", errors.Join(errs...))
	}
	return nil
}

func cgroupProcs(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}
