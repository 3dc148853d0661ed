# Shell helpers shared by the scripts that run the node e2e suite's kubelet (hack/e2e-node/run.sh, guest.sh).

# kubelet_test_thresholds: the KubeletConfiguration lines both node e2e scripts end with. Eviction and image GC
# stay out of the way (the suite's eviction and GC specs set their own), whatever the test machine's disk holds.
kubelet_test_thresholds() {
	cat <<'YAML'
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
YAML
}
