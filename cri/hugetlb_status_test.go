package cri

import (
	"context"
	"encoding/json"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/cgroupsv2"
)

// Status verbose reports the hugetlb detection under its own key.
func TestStatusVerboseHugetlb(t *testing.T) {
	want := cgroupsv2.Hugetlb{PageSizes: []string{"2MB"}, Reason: "no cgroup v1 hierarchy has the hugetlb controller"}
	s := newTestServer(t, Info{Hugetlb: want}, Backends{})
	resp, err := s.Status(context.Background(), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var got cgroupsv2.Hugetlb
	if err := json.Unmarshal([]byte(resp.Info["hugetlb"]), &got); err != nil || got.Available || got.Reason != want.Reason ||
		len(got.PageSizes) != 1 || got.PageSizes[0] != "2MB" {
		t.Errorf("info[hugetlb] = %q (%v), want %+v", resp.Info["hugetlb"], err, want)
	}
	if resp, _ := s.Status(context.Background(), &runtimeapi.StatusRequest{}); resp.Info != nil {
		t.Errorf("non-verbose Status has info %v", resp.Info)
	}
}
