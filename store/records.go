package store

import (
	"encoding/json"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// SandboxState is a sandbox's lifecycle state.
type SandboxState string

// Sandbox states. Creating is written before any side effect, so a crash mid-creation can be rolled back.
const (
	SandboxCreating SandboxState = "creating"
	SandboxReady    SandboxState = "ready"
	SandboxNotReady SandboxState = "notready"
	SandboxUnknown  SandboxState = "unknown"
)

// Sandbox is a pod sandbox: its pinned namespaces, files and network.
type Sandbox struct {
	ID             string                       `json:"id"`
	Name           string                       `json:"name"` // unique: name_namespace_uid_attempt
	Config         *runtimeapi.PodSandboxConfig `json:"-"`
	ConfigBytes    []byte                       `json:"config"`
	RuntimeHandler string                       `json:"runtimeHandler"`
	State          SandboxState                 `json:"state"`
	CreatedAt      int64                        `json:"createdAt"` // unix nanoseconds
	Dir            string                       `json:"dir"`       // <state>/pods/<id>
	// Namespaces maps "net", "ipc", "uts" (and "pid" with a pod init) to their pinned paths; a host namespace is
	// absent.
	Namespaces   map[string]string `json:"namespaces,omitempty"`
	HostNetwork  bool              `json:"hostNetwork"`
	HostIPC      bool              `json:"hostIPC"`
	HostPID      bool              `json:"hostPID"`
	PodPID       bool              `json:"podPID"`  // containers share one PID namespace held by InitPID
	InitPID      int               `json:"initPID"` // the pod's reaper when PodPID
	CgroupParent string            `json:"cgroupParent"`
	// Hostname is the pod's hostname: the config's, or the node's for host-network pods and pods naming none.
	Hostname     string          `json:"hostname"`
	IPs          []string        `json:"ips,omitempty"` // primary first
	CNIResult    json.RawMessage `json:"cniResult,omitempty"`
	NetworkSetUp bool            `json:"networkSetUp"` // CNI ADD was attempted: teardown must DEL
	// Orphaned is set when the RPC that created it had given up by the time it finished: a retry with the same
	// name is handed this sandbox instead of AlreadyExists.
	Orphaned bool   `json:"orphaned,omitempty"`
	Error    string `json:"error,omitempty"` // why the state is unknown
	// ResourcesPB and OverheadPB are the pod-level resources of the last UpdatePodSandboxResources
	// (LinuxContainerResources, proto-encoded); empty when none was received.
	ResourcesPB []byte `json:"resourcesPB,omitempty"`
	OverheadPB  []byte `json:"overheadPB,omitempty"`
}

func (s *Sandbox) encode() ([]byte, error) {
	b, err := marshalProto(s.Config)
	if err != nil {
		return nil, err
	}
	s.ConfigBytes = b
	return json.Marshal(s)
}

func (s *Sandbox) decode(data []byte) error {
	if err := json.Unmarshal(data, s); err != nil {
		return err
	}
	c, err := unmarshalSandboxConfig(s.ConfigBytes)
	if err != nil {
		return err
	}
	s.Config = c
	return nil
}

// ContainerState is a container's lifecycle state.
type ContainerState string

// Container states.
const (
	ContainerCreating ContainerState = "creating"
	ContainerCreated  ContainerState = "created"
	ContainerRunning  ContainerState = "running"
	ContainerExited   ContainerState = "exited"
	ContainerUnknown  ContainerState = "unknown"
)

// Container is one container of a sandbox.
type Container struct {
	ID          string                      `json:"id"`
	SandboxID   string                      `json:"sandboxID"`
	Name        string                      `json:"name"` // unique: name_sandboxname_attempt
	Config      *runtimeapi.ContainerConfig `json:"-"`
	ConfigBytes []byte                      `json:"config"`
	State       ContainerState              `json:"state"`
	CreatedAt   int64                       `json:"createdAt"`
	StartedAt   int64                       `json:"startedAt"`
	FinishedAt  int64                       `json:"finishedAt"`
	ExitCode    int32                       `json:"exitCode"`
	Reason      string                      `json:"reason,omitempty"`
	Message     string                      `json:"message,omitempty"`
	Pid         int                         `json:"pid"`
	ImageName   string                      `json:"imageName"` // as the request named it
	ImageID     string                      `json:"imageID"`   // sha256:<config digest>
	ImageRef    string                      `json:"imageRef"`  // repo digest when known, else the ID
	Runtime     string                      `json:"runtime"`   // handler name
	RuntimeRoot string                      `json:"runtimeRoot"`
	Bundle      string                      `json:"bundle"`
	Rootfs      string                      `json:"rootfs"`
	SnapshotKey string                      `json:"snapshotKey"`
	LogPath     string                      `json:"logPath"`
	CgroupsPath string                      `json:"cgroupsPath"`
	StopSignal  string                      `json:"stopSignal,omitempty"`
	// User is the resolved user the process runs as.
	UID         int64   `json:"uid"`
	GID         int64   `json:"gid"`
	SupplGroups []int64 `json:"supplGroups,omitempty"`
	ResourcesPB []byte  `json:"resources,omitempty"` // current LinuxContainerResources (proto)
	Orphaned    bool    `json:"orphaned,omitempty"`
	Error       string  `json:"error,omitempty"`

	// ImageVolumes are the IDs of the images the container mounts as image volumes (their shared views stay while
	// a record lists them).
	ImageVolumes []string `json:"imageVolumes,omitempty"`
}

func (c *Container) encode() ([]byte, error) {
	b, err := marshalProto(c.Config)
	if err != nil {
		return nil, err
	}
	c.ConfigBytes = b
	return json.Marshal(c)
}

func (c *Container) decode(data []byte) error {
	if err := json.Unmarshal(data, c); err != nil {
		return err
	}
	cfg, err := unmarshalContainerConfig(c.ConfigBytes)
	if err != nil {
		return err
	}
	c.Config = cfg
	return nil
}
