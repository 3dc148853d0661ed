package image

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// netnsChildEnv marks a test binary re-executed by inPrivateNetns.
const netnsChildEnv = "NODED_IMAGE_TEST_NETNS"

// nonLoopbackAddr is an address of lo in the private network namespace of inPrivateNetns: not loopback
// (192.0.2.0/24 is TEST-NET-1), yet reachable only inside that namespace.
const nonLoopbackAddr = "192.0.2.1"

// inPrivateNetns runs the calling top-level test again, alone, in a network namespace of its own (unshare
// --net), with lo up and nonLoopbackAddr added to it, so that the test can listen on an address that is not
// loopback without touching the host's network; the namespace goes away with the process. In the parent it
// reports the child's result and returns false (the caller returns); in the child it returns true.
func inPrivateNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsChildEnv) == "1" {
		for _, args := range [][]string{{"link", "set", "lo", "up"}, {"addr", "add", nonLoopbackAddr + "/32", "dev", "lo"}} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	cmd := exec.Command("unshare", "--net", "--", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), netnsChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	switch {
	case err != nil:
		t.Fatalf("in a private network namespace: %v\n%s", err, out)
	case strings.Contains(string(out), "--- SKIP: "+t.Name()):
		t.Skipf("skipped in the private network namespace:\n%s", out)
	case !strings.Contains(string(out), "--- PASS: "+t.Name()):
		t.Fatalf("the test did not run in the private network namespace:\n%s", out)
	}
	t.Logf("in a private network namespace:\n%s", out)
	return false
}
