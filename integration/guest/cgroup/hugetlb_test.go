package cgroup

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/cgroupsv2"
	cgstats "github.com/noded/noded/cgroupsv2/stats"
)

// TestHugepageLimits sends kubelet's hugepage limits (0 for 2MB and 1GB, and for every size the kernel has) on a
// pure cgroup v2 host with each driver: where the root cgroup has the hugetlb controller they are applied to the
// container's cgroup (hugetlb.<size>.max); where it has not (the test guest: UML has no hugetlb) the zero limits
// are dropped and the container runs, and a non-zero limit is FailedPrecondition. Status verbose reports which.
func TestHugepageLimits(t *testing.T) {
	requireSystemdV2(t)
	want := cgroupsv2.DetectHugetlb(cgstats.DefaultRoot, cgroupsv2.DefaultHugepagesDir)
	t.Logf("hugetlb on this host: %+v", want)
	for i, driver := range []string{cgroupsv2.DriverSystemd, cgroupsv2.DriverCgroupfs} {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver, 5+i)
			st, err := e.n.Runtime.Status(e.ctx, true)
			if err != nil {
				t.Fatal(err)
			}
			var got cgroupsv2.Hugetlb
			if err := json.Unmarshal([]byte(st.Info["hugetlb"]), &got); err != nil || got.Available != want.Available ||
				!slices.Equal(got.PageSizes, want.PageSizes) {
				t.Errorf("Status verbose info[hugetlb] = %q (%v), want %+v", st.Info["hugetlb"], err, want)
			}

			uid := "hugetlb" + driver // no "-": systemd nests slices at dashes
			podCfg := e.podConfig(t, "hugetlb", uid)
			pod := e.runPod(t, podCfg)
			limits := []*runtimeapi.HugepageLimit{{PageSize: "2MB"}, {PageSize: "1GB"}}
			for _, size := range want.PageSizes {
				if size != "2MB" && size != "1GB" {
					limits = append(limits, &runtimeapi.HugepageLimit{PageSize: size})
				}
			}
			res := &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuShares: 2, OomScoreAdj: 1000, HugepageLimits: limits}
			id := e.createContainer(t, pod, podCfg, "zero", res, "sleep", "1000")
			if err := e.n.Runtime.StartContainer(e.ctx, id); err != nil {
				t.Fatalf("StartContainer with kubelet's zero hugepage limits: %v", err)
			}
			dir := e.cgroupDir(e.parent(uid), id)
			if want.Available {
				for _, size := range want.PageSizes {
					if v := readFile(t, dir, "hugetlb."+size+".max"); v != "0" {
						t.Errorf("hugetlb.%s.max = %q, want 0 (kubelet's limit applied)", size, v)
					}
				}
			} else {
				asks := &runtimeapi.LinuxContainerResources{HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 2 << 20}}}
				cfg := &runtimeapi.ContainerConfig{
					Metadata: &runtimeapi.ContainerMetadata{Name: "asks"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
					Command: []string{"true"}, Linux: &runtimeapi.LinuxContainerConfig{Resources: asks},
				}
				if _, err := e.n.Runtime.CreateContainer(e.ctx, pod, cfg, podCfg); status.Code(err) != codes.FailedPrecondition ||
					!strings.Contains(err.Error(), "2MB=2097152") {
					t.Errorf("non-zero hugepage limit without hugetlb: %v, want FailedPrecondition", err)
				}
			}
			e.removePod(t, pod)
		})
	}
}
