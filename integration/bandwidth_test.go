package integration

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A bandwidth annotation noded cannot apply fails RunPodSandbox with InvalidArgument before anything is made (as
// containerd does), instead of running the pod unshaped; a valid one on a pod of the host network is not read.
func TestSandboxMalformedBandwidth(t *testing.T) {
	e := newPodEnv(t, 93, nil)
	for _, tc := range []struct{ key, val string }{
		{"kubernetes.io/ingress-bandwidth", "lots"},
		{"kubernetes.io/egress-bandwidth", "10X"},
		{"kubernetes.io/ingress-bandwidth", "1"}, // below kubelet's 1k
	} {
		cfg := e.podConfig(t, "bw")
		cfg.Annotations = map[string]string{tc.key: tc.val}
		_, err := e.n.Runtime.RunPodSandbox(e.ctx, cfg, "")
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s=%q: RunPodSandbox = %v, want InvalidArgument naming the annotation", tc.key, tc.val, err)
		}
	}
	pods, err := e.n.Runtime.ListPodSandbox(e.ctx, nil)
	if err != nil || len(pods) != 0 {
		t.Fatalf("pods after refused requests: %v %v", pods, err)
	}
	assertNoLeaks(t, e.n)
}
