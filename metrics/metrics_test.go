package metrics

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestEndpointExposesObservations(t *testing.T) {
	m := New()
	m.ObserveRPC("/runtime.v1.RuntimeService/RunPodSandbox", codes.OK, 20*time.Millisecond)
	m.ObserveRPC("/runtime.v1.RuntimeService/PodSandboxStatus", codes.NotFound, time.Millisecond)
	m.ObservePull(time.Second, nil)
	m.AddPullBytes(1234)
	m.ObserveCNI("setup", 5*time.Millisecond, nil)
	m.ObserveCNI("teardown", 5*time.Millisecond, errors.New("x"))
	m.RuntimeObserver("runc")("create", 10*time.Millisecond, nil)
	m.RuntimeObserver("runc")("kill", time.Millisecond, errors.New("not running"))
	if err := m.RegisterStateCounts(func() (map[string]int, map[string]int) {
		return map[string]int{"ready": 2}, map[string]int{"running": 3, "odd": 1}
	}, []string{"ready", "notready"}, []string{"running", "exited"}); err != nil {
		t.Fatal(err)
	}
	addr, stop, err := m.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`noded_cri_request_duration_seconds_count{method="/runtime.v1.RuntimeService/RunPodSandbox"} 1`,
		`noded_cri_request_errors_total{code="NotFound",method="/runtime.v1.RuntimeService/PodSandboxStatus"} 1`,
		`noded_image_pull_duration_seconds_count{result="success"} 1`,
		`noded_image_pull_bytes_total 1234`,
		`noded_cni_operation_duration_seconds_count{operation="setup",result="success"} 1`,
		`noded_cni_operation_duration_seconds_count{operation="teardown",result="error"} 1`,
		`noded_oci_runtime_operation_duration_seconds_count{operation="create",runtime="runc"} 1`,
		`noded_oci_runtime_operation_errors_total{operation="kill",runtime="runc"} 1`,
		`noded_pods{state="ready"} 2`,
		`noded_pods{state="notready"} 0`,
		`noded_containers{state="running"} 3`,
		`noded_containers{state="exited"} 0`,
		`noded_containers{state="odd"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(text, `noded_cri_request_errors_total{code="OK"`) {
		t.Error("successful calls counted as errors")
	}
}

func TestNilMetricsIgnoresObservations(t *testing.T) {
	var m *Metrics
	m.ObserveRPC("/x", codes.Internal, time.Second)
	m.ObservePull(time.Second, nil)
	m.AddPullBytes(1)
	m.ObserveCNI("setup", time.Second, nil)
	if m.RuntimeObserver("runc") != nil {
		t.Fatal("nil Metrics returned an observer")
	}
}
