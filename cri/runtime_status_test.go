package cri

import (
	"context"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The verbose Status carries the security module facts the daemon reports; the plain one does not.
func TestStatusVerboseReportsSecurity(t *testing.T) {
	s := newTestServer(t, Info{Security: func() map[string]string {
		return map[string]string{"apparmor": `{"enabled":true,"defaultProfile":"noded-default","loaded":true}`, "selinux": "disabled"}
	}}, Backends{})
	resp, err := s.Status(context.Background(), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Info["apparmor"] == "" || resp.Info["selinux"] != "disabled" {
		t.Errorf("verbose info %v", resp.Info)
	}
	if _, ok := resp.Info["podCIDR"]; !ok {
		t.Errorf("verbose info lost podCIDR: %v", resp.Info)
	}
	resp, err = s.Status(context.Background(), &runtimeapi.StatusRequest{})
	if err != nil || len(resp.Info) != 0 {
		t.Errorf("plain status info %v, %v", resp.GetInfo(), err)
	}
}
