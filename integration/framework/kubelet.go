package framework

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"

	"github.com/noded/noded/internal/testnet"
)

// KubeletEnv names the kubelet binary the kubelet tests run; hack/test.sh sets it from hack/k8s/build.sh.
const KubeletEnv = "NODED_KUBELET"

// KubeletVersion is the Kubernetes release whose kubelet the tests expect (the one hack/k8s/build.sh builds).
const KubeletVersion = "v1.37.2"

// KubeletBinary returns the kubelet to test with: $NODED_KUBELET (the test fails if it is set and not
// executable), else the one hack/k8s/build.sh cached ($NODED_K8S_CACHE or /var/cache/noded-k8s). Without either
// the test is skipped, saying how to get one.
func KubeletBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(KubeletEnv); p != "" {
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			t.Fatalf("%s=%s is not an executable kubelet (%v)", KubeletEnv, p, err)
		}
		return p
	}
	cache := os.Getenv("NODED_K8S_CACHE")
	if cache == "" {
		cache = "/var/cache/noded-k8s"
	}
	p := filepath.Join(cache, KubeletVersion, "bin", "kubelet")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no kubelet: %s is unset and %s does not exist; build it with `hack/k8s/build.sh kubelet` "+
			"(hack/test.sh does) or point %s at a kubelet %s", KubeletEnv, p, KubeletEnv, KubeletVersion)
	}
	return p
}

// KubeletOptions configure one standalone kubelet.
type KubeletOptions struct {
	// Binary is the kubelet to run; empty means KubeletBinary.
	Binary string
	// Config holds KubeletConfiguration fields that replace the generated ones (JSON names, e.g. "syncFrequency").
	Config map[string]any
	// FeatureGates are kubelet's featureGates (merged into a "featureGates" map of Config).
	FeatureGates map[string]bool
	// Verbosity is kubelet's --v; 0 means 2.
	Verbosity int
	// Args are appended to kubelet's command line.
	Args []string
}

// Kubelet is one standalone kubelet (static pods from ManifestDir, no API server) on a private noded. Everything
// it makes on the host is undone by Cleanup, which is registered on the test: its processes, the rshared bind
// mount of its root dir, its cgroups, the host files it always writes outside its root dir and the sysctls it
// rewrites.
type Kubelet struct {
	t           testing.TB
	noded       *Noded
	Dir         string // everything of this kubelet lives below it
	RootDir     string
	ManifestDir string // staticPodPath
	PodLogsDir  string
	ConfigPath  string
	LogPath     string
	CgroupRoot  string // cgroupRoot, an absolute cgroupfs path of this kubelet's own
	NodeName    string
	Port        int // the HTTPS API port on 127.0.0.1, without authentication or authorization
	args        []string

	proc   *child // nil when not running
	client *http.Client
	host   hostState
	unlock func()
	once   sync.Once
}

// kubeletSysctls are the host sysctls kubelet rewrites at start (its "kernel tunables"); Cleanup restores them.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// Host paths kubelet writes whatever its root dir is.
const (
	kubeletDevicePluginDir = "/var/lib/kubelet/device-plugins"
	kubeletContainerLogDir = "/var/log/containers"
	// kubeletHostLock is held (flock) by every kubelet run that writes them: StartKubelet, and
	// hack/e2e-node/run.sh for its whole run.
	kubeletHostLock = "/run/noded-test-kubelet.lock"
)

// hostState is what Cleanup puts back: sysctl values and which host paths existed before kubelet started.
type hostState struct {
	sysctls map[string]string
	existed map[string]bool // host dirs and files kubelet may create
}

// hostPaths kubelet creates outside its root dir; children before parents.
var hostPaths = []string{
	kubeletDevicePluginDir + "/kubelet.sock",
	kubeletDevicePluginDir + "/kubelet_internal_checkpoint",
	kubeletDevicePluginDir,
	"/var/lib/kubelet",
	kubeletContainerLogDir,
}

// KubeletPort is the API port of this test slot's kubelet (10260 + NODED_TEST_SLOT).
func KubeletPort() int { return 10260 + testnet.Slot() }

// KubeletConfiguration returns the KubeletConfiguration (kubelet.config.k8s.io/v1beta1, as JSON field names) of
// a standalone kubelet on this kind of host: cgroupfs under cgroupRoot, cgroup v1 allowed, no swap check, no
// node allocatable enforcement, oom_score_adj and open-file limit as they are (no CAP_SYS_RESOURCE), image GC and
// eviction out of the way, no iptables chains, and the API on 127.0.0.1:port with authentication and
// authorization off. Runtime endpoint, static pod dir and logs dir are the caller's.
func KubeletConfiguration(endpoint, staticPodPath, podLogsDir, cgroupRoot string, port int) (map[string]any, error) {
	oom, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return nil, fmt.Errorf("read oom_score_adj: %w", err)
	}
	oomAdj, err := strconv.Atoi(strings.TrimSpace(string(oom)))
	if err != nil {
		return nil, fmt.Errorf("parse oom_score_adj %q: %w", oom, err)
	}
	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err != nil {
		return nil, fmt.Errorf("getrlimit nofile: %w", err)
	}
	return map[string]any{
		"kind":                     "KubeletConfiguration",
		"apiVersion":               "kubelet.config.k8s.io/v1beta1",
		"containerRuntimeEndpoint": endpoint,
		"staticPodPath":            staticPodPath,
		"fileCheckFrequency":       "1s",
		"podLogsDir":               podLogsDir,
		"address":                  "127.0.0.1",
		"port":                     port,
		"readOnlyPort":             0,
		"healthzPort":              0, // /healthz is on the API port too
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": true},
			"webhook":   map[string]any{"enabled": false},
		},
		"authorization": map[string]any{"mode": "AlwaysAllow"},
		// noded answers RuntimeConfig with its driver and kubelet takes that; this is what it must say.
		"cgroupDriver":           "cgroupfs",
		"cgroupsPerQOS":          true,
		"cgroupRoot":             cgroupRoot,
		"enforceNodeAllocatable": []string{},
		"failCgroupV1":           false,
		"failSwapOn":             false,
		"oomScoreAdj":            oomAdj,
		"maxOpenFiles":           nofile.Max,
		"makeIPTablesUtilChains": false,
		// 100 with no maximum age turns image GC off: the images are the test's.
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		"evictionHard": map[string]string{
			"memory.available": "1Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%", "imagefs.available": "1%",
		},
		"serializeImagePulls": false,
	}, nil
}

// StartKubelet runs a standalone kubelet on noded n with fresh dirs, a cgroup root of its own and the slot's API
// port, and waits until its API answers /healthz. Only one test kubelet runs on the host at a time (the host
// files and sysctls it writes are shared): StartKubelet waits for a host-wide lock.
func StartKubelet(t testing.TB, n *Noded, o KubeletOptions) *Kubelet {
	t.Helper()
	RequireRoot(t)
	bin := o.Binary
	if bin == "" {
		bin = KubeletBinary(t)
	}
	slot := testnet.Slot()
	dir, err := os.MkdirTemp("/var/tmp", fmt.Sprintf("noded-kubelet-s%d-", slot))
	if err != nil {
		t.Fatal(err)
	}
	k := &Kubelet{
		t:           t,
		noded:       n,
		Dir:         dir,
		RootDir:     filepath.Join(dir, "root"),
		ManifestDir: filepath.Join(dir, "manifests"),
		PodLogsDir:  filepath.Join(dir, "pod-logs"),
		ConfigPath:  filepath.Join(dir, "kubelet.json"),
		LogPath:     filepath.Join(dir, "kubelet.log"),
		CgroupRoot:  "/" + filepath.Base(dir),
		NodeName:    fmt.Sprintf("noded-kubelet-s%d", slot),
		Port:        KubeletPort(),
		client: &http.Client{Timeout: time.Minute, Transport: &http.Transport{
			// kubelet serves a self-signed certificate of its own.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // test client of a loopback kubelet
		}},
	}
	unlock, err := lockFile(kubeletHostLock, func() { t.Logf("waiting for %s (another test kubelet runs)", kubeletHostLock) })
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatal(err)
	}
	k.unlock = unlock
	k.host = saveHostState()
	t.Cleanup(func() {
		for _, err := range k.Cleanup() {
			t.Errorf("kubelet cleanup: %v", err)
		}
	})
	for _, d := range []string{k.RootDir, k.ManifestDir, k.PodLogsDir, filepath.Join(dir, "volume-plugins")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := makeCgroup(k.CgroupRoot); err != nil {
		t.Fatal(err)
	}
	cfg, err := KubeletConfiguration("unix://"+n.Socket, k.ManifestDir, k.PodLogsDir, k.CgroupRoot, k.Port)
	if err != nil {
		t.Fatal(err)
	}
	cfg["volumePluginDir"] = filepath.Join(dir, "volume-plugins")
	for key, v := range o.Config {
		cfg[key] = v
	}
	if len(o.FeatureGates) > 0 {
		gates := map[string]any{}
		if m, ok := cfg["featureGates"].(map[string]any); ok {
			for g, v := range m {
				gates[g] = v
			}
		}
		for g, v := range o.FeatureGates {
			gates[g] = v
		}
		cfg["featureGates"] = gates
	}
	verbosity := o.Verbosity
	if verbosity == 0 {
		verbosity = 2
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.ConfigPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	k.args = append([]string{bin, "--config", k.ConfigPath, "--root-dir", k.RootDir,
		"--cert-dir", filepath.Join(k.RootDir, "pki"), "--hostname-override", k.NodeName, "--v", strconv.Itoa(verbosity)}, o.Args...)
	k.start()
	return k
}

func (k *Kubelet) start() {
	k.t.Helper()
	c, err := startChild(k.args, nil, k.LogPath)
	if err != nil {
		k.t.Fatal(err)
	}
	k.proc = c
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if st := c.state(); st != nil {
			k.t.Fatalf("kubelet exited at start: %v\n%s", st, tail(k.Log(), 60))
		}
		if b, err := k.Get(context.Background(), "/healthz"); err == nil && string(b) == "ok" {
			return
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("kubelet API on 127.0.0.1:%d not healthy after 2m\n%s", k.Port, tail(k.Log(), 60))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Log returns what kubelet wrote so far.
func (k *Kubelet) Log() string {
	b, _ := os.ReadFile(k.LogPath)
	return string(b)
}

// Running reports whether the kubelet process is alive.
func (k *Kubelet) Running() bool { return k.proc.running() }

// Stop sends kubelet SIGTERM and waits for it to exit (SIGKILL after 30s). Its pods keep running, as on a node.
func (k *Kubelet) Stop() {
	if k.proc == nil {
		return
	}
	k.proc.stop(30 * time.Second)
	k.proc = nil
}

// Restart stops kubelet (SIGTERM) and starts it again on the same dirs and config, as an upgrade or a crash
// loop of kubelet would; its pods keep running meanwhile.
func (k *Kubelet) Restart() {
	k.t.Helper()
	k.Stop()
	k.start()
}

// WriteStaticPod writes a pod manifest (marshalled to JSON) into the static pod dir; kubelet picks it up within
// fileCheckFrequency. The pod kubelet runs is named "<name>-<NodeName>".
func (k *Kubelet) WriteStaticPod(name string, pod any) {
	k.t.Helper()
	b, err := json.MarshalIndent(pod, "", "  ")
	if err != nil {
		k.t.Fatal(err)
	}
	tmp := filepath.Join(k.ManifestDir, "."+name+".tmp") // dot files are ignored by kubelet
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		k.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(k.ManifestDir, name+".json")); err != nil {
		k.t.Fatal(err)
	}
}

// RemoveStaticPod removes a manifest written by WriteStaticPod; kubelet then stops the pod.
func (k *Kubelet) RemoveStaticPod(name string) {
	k.t.Helper()
	if err := os.Remove(filepath.Join(k.ManifestDir, name+".json")); err != nil {
		k.t.Fatal(err)
	}
}

// PodName is the name kubelet gives the static pod of manifest name.
func (k *Kubelet) PodName(name string) string { return name + "-" + k.NodeName }

func (k *Kubelet) url(path string) string { return fmt.Sprintf("https://127.0.0.1:%d%s", k.Port, path) }

// Get fetches a path of kubelet's API and returns the body of a 200 answer.
func (k *Kubelet) Get(ctx context.Context, path string) ([]byte, error) {
	return k.do(ctx, http.MethodGet, path)
}

func (k *Kubelet) do(ctx context.Context, method, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, k.url(path), nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// KubeletPod is the part of a v1.Pod the tests read from kubelet's /pods.
type KubeletPod struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		UID       string `json:"uid"`
	} `json:"metadata"`
	Status struct {
		Phase      string `json:"phase"`
		PodIP      string `json:"podIP"`
		HostIP     string `json:"hostIP"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		ContainerStatuses []KubeletContainerStatus `json:"containerStatuses"`
	} `json:"status"`
}

// KubeletContainerStatus is the part of a v1.ContainerStatus the tests read.
type KubeletContainerStatus struct {
	Name         string `json:"name"`
	Ready        bool   `json:"ready"`
	RestartCount int    `json:"restartCount"`
	ContainerID  string `json:"containerID"`
	State        struct {
		Running *struct {
			StartedAt string `json:"startedAt"`
		} `json:"running"`
		Waiting *struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"waiting"`
		Terminated *struct {
			ExitCode int    `json:"exitCode"`
			Reason   string `json:"reason"`
			Message  string `json:"message"`
		} `json:"terminated"`
	} `json:"state"`
	LastState struct {
		Terminated *struct {
			ExitCode int    `json:"exitCode"`
			Reason   string `json:"reason"`
			Message  string `json:"message"`
		} `json:"terminated"`
	} `json:"lastState"`
}

// Condition returns the status ("True", "False") of the pod condition typ, or "" without one.
func (p *KubeletPod) Condition(typ string) string {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

// Container returns the status of container name, or nil.
func (p *KubeletPod) Container(name string) *KubeletContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// Pods returns the pods kubelet knows, with the status its status manager holds (kubelet's /pods).
func (k *Kubelet) Pods(ctx context.Context) ([]KubeletPod, error) {
	b, err := k.Get(ctx, "/pods")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []KubeletPod `json:"items"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("decode /pods: %w", err)
	}
	return list.Items, nil
}

// WaitPod polls /pods until the pod (kubelet's name) satisfies cond, failing t after timeout with the last
// status seen, the pod's events in kubelet's log and noded's log tail.
func (k *Kubelet) WaitPod(ctx context.Context, namespace, name string, timeout time.Duration, what string, cond func(*KubeletPod) bool) *KubeletPod {
	k.t.Helper()
	deadline := time.Now().Add(timeout)
	var last []byte
	for {
		pods, err := k.Pods(ctx)
		if err == nil {
			for i := range pods {
				p := &pods[i]
				if p.Metadata.Namespace == namespace && p.Metadata.Name == name {
					last, _ = json.Marshal(p.Status)
					if cond(p) {
						return p
					}
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			k.t.Fatalf("pod %s/%s: not %s within %s; last status %s (err %v)\n--- kubelet log about it ---\n%s",
				namespace, name, what, timeout, last, err, k.logAbout(name, 40))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// logAbout returns the last lines of kubelet's log that mention s.
func (k *Kubelet) logAbout(s string, lines int) string {
	var out []string
	for _, l := range strings.Split(k.Log(), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	if len(out) > lines {
		out = out[len(out)-lines:]
	}
	return strings.Join(out, "\n")
}

// Metric sums the samples of kubelet's /metrics whose name is name and whose labels contain every label
// (`key="value"`); a metric kubelet has not recorded yet is 0.
func (k *Kubelet) Metric(ctx context.Context, name string, labels ...string) (float64, error) {
	b, err := k.Get(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		series, value, ok := strings.Cut(l, " ")
		if i := strings.LastIndex(l, "} "); i >= 0 {
			series, value, ok = l[:i+1], l[i+2:], true
		}
		match := ok
		for _, want := range labels {
			match = match && strings.Contains(series, want)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", l, err)
		}
		sum += v
	}
	return sum, nil
}

// ContainerLogs returns a container's log through kubelet's /containerLogs (query as kubectl logs sends it,
// e.g. "previous=true" or "tailLines=5"; may be empty).
func (k *Kubelet) ContainerLogs(ctx context.Context, namespace, pod, container, query string) (string, error) {
	p := "/containerLogs/" + url.PathEscape(namespace) + "/" + url.PathEscape(pod) + "/" + url.PathEscape(container)
	if query != "" {
		p += "?" + query
	}
	b, err := k.Get(ctx, p)
	return string(b), err
}

// Run runs a command in a container through kubelet's /run (kubelet runs it with the runtime's ExecSync and
// answers the combined output). Arguments are split at spaces by kubelet, so they cannot contain any.
func (k *Kubelet) Run(ctx context.Context, namespace, pod, container string, cmd ...string) (string, error) {
	for _, a := range cmd {
		if strings.Contains(a, " ") {
			return "", fmt.Errorf("kubelet /run splits the command at spaces: %q", a)
		}
	}
	p := "/run/" + url.PathEscape(namespace) + "/" + url.PathEscape(pod) + "/" + url.PathEscape(container) +
		"?cmd=" + url.QueryEscape(strings.Join(cmd, " "))
	b, err := k.do(ctx, http.MethodPost, p)
	return string(b), err
}

// Exec runs a command in a container through kubelet's /exec as `kubectl exec` does (SPDY, protocol
// v4.channel.k8s.io; kubelet proxies the stream to the runtime's streaming server) and returns stdout, stderr
// and the exit code.
func (k *Kubelet) Exec(ctx context.Context, namespace, pod, container string, cmd ...string) (stdout, stderr string, code int, err error) {
	q := url.Values{"output": {"1"}, "error": {"1"}}
	for _, c := range cmd {
		q.Add("command", c)
	}
	conn, err := k.dialStream(ctx, "/exec/"+url.PathEscape(namespace)+"/"+url.PathEscape(pod)+"/"+
		url.PathEscape(container)+"?"+q.Encode(), "v4.channel.k8s.io")
	if err != nil {
		return "", "", 0, err
	}
	defer conn.Close()
	errStream, err := createStream(conn, "streamType", "error")
	if err != nil {
		return "", "", 0, err
	}
	var outBuf, errBuf bytes.Buffer
	var wg sync.WaitGroup
	for typ, buf := range map[string]*bytes.Buffer{"stdout": &outBuf, "stderr": &errBuf} {
		s, err := createStream(conn, "streamType", typ)
		if err != nil {
			return "", "", 0, err
		}
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = io.Copy(buf, s) }()
	}
	status, err := io.ReadAll(errStream)
	if err != nil {
		return "", "", 0, fmt.Errorf("read exec status: %w", err)
	}
	wg.Wait()
	code, err = execExitCode(status)
	return outBuf.String(), errBuf.String(), code, err
}

// PortForward opens a connection to port in the pod through kubelet's /portForward as `kubectl port-forward`
// does (SPDY, portforward.k8s.io; kubelet proxies it to the runtime's streaming server), writes request, closes
// its side and returns what the pod's server answered until it closed the connection.
func (k *Kubelet) PortForward(ctx context.Context, namespace, pod string, port int, request []byte) ([]byte, error) {
	conn, err := k.dialStream(ctx, "/portForward/"+url.PathEscape(namespace)+"/"+url.PathEscape(pod), "portforward.k8s.io")
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	hdr := []string{"port", strconv.Itoa(port), "requestID", "0"}
	errStream, err := createStream(conn, append([]string{"streamType", "error"}, hdr...)...)
	if err != nil {
		return nil, err
	}
	data, err := createStream(conn, append([]string{"streamType", "data"}, hdr...)...)
	if err != nil {
		return nil, err
	}
	if _, err := data.Write(request); err != nil {
		return nil, fmt.Errorf("port-forward write: %w", err)
	}
	_ = data.Close() // half-close: the server sees the end of the request
	reply, rerr := io.ReadAll(data)
	if msg, _ := io.ReadAll(errStream); len(msg) > 0 {
		return reply, fmt.Errorf("port-forward error: %s", msg)
	}
	return reply, rerr
}

// dialStream upgrades a request to kubelet's API to a SPDY connection speaking protocol.
func (k *Kubelet) dialStream(ctx context.Context, path, protocol string) (httpstream.Connection, error) {
	rt, err := spdy.NewRoundTripper(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // loopback test kubelet
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.url(path), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(httpstream.HeaderProtocolVersion, protocol)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		return nil, fmt.Errorf("upgrade %s: %w", path, err)
	}
	return conn, nil
}

// createStream opens a stream with the given header key/value pairs.
func createStream(conn httpstream.Connection, kv ...string) (httpstream.Stream, error) {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return conn.CreateStream(h)
}

// execExitCode decodes the v4 protocol's status (a metav1.Status; empty means success).
func execExitCode(status []byte) (int, error) {
	if len(bytes.TrimSpace(status)) == 0 {
		return 0, nil
	}
	var st struct {
		Status  string `json:"status"`
		Message string `json:"message"`
		Reason  string `json:"reason"`
		Details struct {
			Causes []struct {
				Reason  string `json:"reason"`
				Message string `json:"message"`
			} `json:"causes"`
		} `json:"details"`
	}
	if err := json.Unmarshal(status, &st); err != nil {
		return 0, fmt.Errorf("decode exec status %q: %w", status, err)
	}
	if st.Status == "Success" {
		return 0, nil
	}
	if st.Reason == "NonZeroExitCode" {
		for _, c := range st.Details.Causes {
			if c.Reason == "ExitCode" {
				return strconv.Atoi(c.Message)
			}
		}
	}
	return 0, fmt.Errorf("exec failed: %s", st.Message)
}

// Cleanup stops kubelet and removes what it left: the pods it ran (through noded's CRI, stopped then removed),
// its processes, the mounts below its dir (the rshared bind of its root dir), its cgroup root in every hierarchy,
// the /var/log/containers links into its logs dir, the device-plugin socket and checkpoint in /var/lib/kubelet
// and the dirs it created there, and the sysctls it rewrote. It runs once (also from the test's cleanup) and
// returns what it could not undo.
func (k *Kubelet) Cleanup() []error {
	var errs []error
	k.once.Do(func() { errs = k.cleanup() })
	return errs
}

func (k *Kubelet) cleanup() []error {
	if k.t.Failed() {
		k.t.Logf("--- kubelet log (%s) ---\n%s", k.LogPath, tail(k.Log(), 150))
	}
	k.Stop()
	var errs []error
	if k.noded != nil && k.noded.Running() {
		errs = append(errs, RemoveAllPods(k.noded)...)
	}
	for _, pid := range processesMentioning(k.Dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, m := range MountsBelow(k.Dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	if k.CgroupRoot != "" {
		errs = append(errs, RemoveCgroupTree(k.CgroupRoot)...)
	}
	errs = append(errs, k.removeLogLinks()...)
	errs = append(errs, k.host.restore()...)
	if err := os.RemoveAll(k.Dir); err != nil {
		errs = append(errs, err)
	}
	if k.unlock != nil {
		k.unlock()
	}
	return errs
}

// RemoveAllPods stops and removes every container and pod sandbox of noded n through its CRI.
func RemoveAllPods(n *Noded) []error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	cs, err := n.Runtime.ListContainers(ctx, nil)
	if err != nil {
		return []error{fmt.Errorf("list containers: %w", err)}
	}
	for _, c := range cs {
		if err := n.Runtime.StopContainer(ctx, c.Id, 0); err != nil {
			errs = append(errs, fmt.Errorf("stop container %s: %w", c.Id, err))
		}
		if err := n.Runtime.RemoveContainer(ctx, c.Id); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.Id, err))
		}
	}
	pods, err := n.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return append(errs, fmt.Errorf("list pods: %w", err))
	}
	for _, p := range pods {
		if err := n.Runtime.StopPodSandbox(ctx, p.Id); err != nil {
			errs = append(errs, fmt.Errorf("stop pod %s: %w", p.Id, err))
		}
		if err := n.Runtime.RemovePodSandbox(ctx, p.Id); err != nil {
			errs = append(errs, fmt.Errorf("remove pod %s: %w", p.Id, err))
		}
	}
	return errs
}

// removeLogLinks removes the links kubelet made in /var/log/containers to logs in this kubelet's logs dir.
func (k *Kubelet) removeLogLinks() []error {
	var errs []error
	for _, l := range k.logLinks() {
		if err := os.Remove(l); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errs
}

func (k *Kubelet) logLinks() []string {
	entries, _ := os.ReadDir(kubeletContainerLogDir)
	var out []string
	for _, e := range entries {
		p := filepath.Join(kubeletContainerLogDir, e.Name())
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, k.PodLogsDir+"/") {
			out = append(out, p)
		}
	}
	return out
}

// Leftovers lists what this kubelet left on the host after Cleanup: anything listed is a leak.
func (k *Kubelet) Leftovers() []string {
	var out []string
	if k.Running() {
		out = append(out, "kubelet process still running")
	}
	for _, pid := range processesMentioning(k.Dir) {
		out = append(out, fmt.Sprintf("process %d mentions %s", pid, k.Dir))
	}
	for _, m := range MountsBelow(k.Dir) {
		out = append(out, "mount "+m)
	}
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range append(hierarchies, "/sys/fs/cgroup") {
		if _, err := os.Stat(filepath.Join(h, k.CgroupRoot)); err == nil {
			out = append(out, "cgroup "+filepath.Join(h, k.CgroupRoot))
		}
	}
	for _, l := range k.logLinks() {
		out = append(out, "log link "+l)
	}
	for _, p := range hostPaths {
		if _, err := os.Lstat(p); err == nil && !k.host.existed[p] {
			out = append(out, "host path "+p)
		}
	}
	for _, s := range kubeletSysctls {
		if now := readSysctl(s); now != k.host.sysctls[s] {
			out = append(out, fmt.Sprintf("sysctl %s = %s, was %s", s, now, k.host.sysctls[s]))
		}
	}
	if _, err := os.Stat(k.Dir); err == nil {
		out = append(out, "dir "+k.Dir)
	}
	sort.Strings(out)
	return out
}

func readSysctl(name string) string {
	b, _ := os.ReadFile(filepath.Join("/proc/sys", name))
	return strings.TrimSpace(string(b))
}

func saveHostState() hostState {
	h := hostState{sysctls: map[string]string{}, existed: map[string]bool{}}
	for _, s := range kubeletSysctls {
		h.sysctls[s] = readSysctl(s)
	}
	for _, p := range hostPaths {
		if _, err := os.Lstat(p); err == nil {
			h.existed[p] = true
		}
	}
	return h
}

// restore writes back the saved sysctls and removes the host paths that did not exist before (dirs only when
// empty, so nothing of anyone else's goes).
func (h hostState) restore() []error {
	var errs []error
	for _, s := range kubeletSysctls {
		want := h.sysctls[s]
		if want == "" || readSysctl(s) == want {
			continue
		}
		if err := os.WriteFile(filepath.Join("/proc/sys", s), []byte(want), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", s, want, err))
		}
	}
	for _, p := range hostPaths {
		if h.existed[p] {
			continue
		}
		st, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if st.IsDir() {
			err = syscall.Rmdir(p)
		} else {
			err = os.Remove(p)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", p, err))
		}
	}
	return errs
}

// makeCgroup creates the absolute cgroupfs path in every mounted hierarchy (kubelet refuses a cgroupRoot that
// does not exist), with the v1 cpuset of its parent so that tasks may join it.
func makeCgroup(path string) error {
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	hierarchies = append(hierarchies, "/sys/fs/cgroup")
	for _, h := range hierarchies {
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil {
			continue
		}
		dir := filepath.Join(h, path)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if _, err := os.Stat(filepath.Join(h, f)); err != nil || filepath.Base(h) != "cpuset" {
				continue
			}
			v, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
				return fmt.Errorf("write %s: %w", filepath.Join(dir, f), err)
			}
		}
	}
	return nil
}

// lockFile takes an exclusive flock on path, calling waiting once if it has to wait, and returns the unlock.
func lockFile(path string, waiting func()) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		waiting()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
