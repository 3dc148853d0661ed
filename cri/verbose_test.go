package cri

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestStatusVerboseInfoKeys(t *testing.T) {
	s := newTestServer(t, Info{CgroupDriver: "cgroupfs", Verbose: VerboseInfo{
		Config:   func() ([]byte, error) { return []byte(`{"default_runtime":"runc"}`), nil },
		Features: func(context.Context) any { return map[string]any{"host": map[string]bool{"idmappedMounts": true}} },
	}}, Backends{})
	resp, err := s.Status(context.Background(), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetFeatures().GetMountOptions() || !resp.GetFeatures().GetSupplementalGroupsPolicy() {
		t.Errorf("runtime features %v, want mount_options and supplemental_groups_policy", resp.GetFeatures())
	}
	for _, k := range []string{"config", "features"} {
		var v map[string]any
		if err := json.Unmarshal([]byte(resp.Info[k]), &v); err != nil {
			t.Errorf("info[%q] = %q is not a JSON object: %v", k, resp.Info[k], err)
		}
	}
	if resp.Info["cgroupDriver"] != "cgroupfs" {
		t.Errorf("info = %v", resp.Info)
	}
	resp, err = s.Status(context.Background(), &runtimeapi.StatusRequest{})
	if err != nil || len(resp.Info) != 0 {
		t.Errorf("Status without verbose: info %v, %v", resp.GetInfo(), err)
	}
}

func TestStatusVerboseConfigFailureLeavesKeyOut(t *testing.T) {
	s := newTestServer(t, Info{Verbose: VerboseInfo{Config: func() ([]byte, error) { return nil, errors.New("boom") }}}, Backends{})
	resp, err := s.Status(context.Background(), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := resp.Info["config"]; ok {
		t.Errorf("info has a config despite the failure: %v", resp.Info)
	}
}
