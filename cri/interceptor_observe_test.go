package cri

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

// The observer sees every call once, with the gRPC code the client gets (after error mapping and panic recovery).
func TestObservedInterceptorsReportMappedCodes(t *testing.T) {
	type call struct {
		method string
		code   codes.Code
	}
	var got []call
	obs := func(method string, code codes.Code, d time.Duration) {
		if d < 0 {
			t.Errorf("negative latency %v", d)
		}
		got = append(got, call{method, code})
	}
	unary := ObservedUnaryInterceptor(obs)
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/PodSandboxStatus"}
	_, _ = unary(context.Background(), nil, info, func(context.Context, any) (any, error) { return "ok", nil })
	_, _ = unary(context.Background(), nil, info, func(context.Context, any) (any, error) { return nil, errdefs.NotFound("pod") })
	_, _ = unary(context.Background(), nil, info, func(context.Context, any) (any, error) { panic("boom") })
	stream := ObservedStreamInterceptor(obs)
	sinfo := &grpc.StreamServerInfo{FullMethod: "/runtime.v1.RuntimeService/GetContainerEvents"}
	_ = stream(nil, nil, sinfo, func(any, grpc.ServerStream) error { return errdefs.InvalidArgument("x") })

	want := []call{
		{info.FullMethod, codes.OK}, {info.FullMethod, codes.NotFound}, {info.FullMethod, codes.Internal},
		{sinfo.FullMethod, codes.InvalidArgument},
	}
	if len(got) != len(want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d: observed %v, want %v", i, got[i], want[i])
		}
	}
}

func TestIDKeysNameThePodAndContainer(t *testing.T) {
	got := idKeys(&runtimeapi.StartContainerRequest{ContainerId: "c1"})
	if len(got) != 2 || got[0] != "containerID" || got[1] != "c1" {
		t.Errorf("StartContainer: %v", got)
	}
	got = idKeys(&runtimeapi.StopPodSandboxRequest{PodSandboxId: "p1"})
	if len(got) != 2 || got[0] != "podSandboxID" || got[1] != "p1" {
		t.Errorf("StopPodSandbox: %v", got)
	}
	got = idKeys(&runtimeapi.CreateContainerRequest{PodSandboxId: "p1"})
	if len(got) != 2 || got[0] != "podSandboxID" {
		t.Errorf("CreateContainer: %v", got)
	}
	if got := idKeys(&runtimeapi.VersionRequest{}); len(got) != 0 {
		t.Errorf("Version: %v", got)
	}
}
