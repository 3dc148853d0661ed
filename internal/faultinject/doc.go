// Package faultinject lets crash tests kill noded at named points of its operations. It is compiled in only
// with the build tag "faultinject" (the integration framework builds such a binary on request); in every other
// build Point and Reader do nothing and cost nothing.
//
// With the tag, NODED_FAULTINJECT_FILE names a file the test writes one point name into. When noded reaches
// that point, it removes the file (so the restarted daemon does not fire again), logs the point on stderr and
// kills itself with SIGKILL, as a crash or an OOM kill would. "delay <point> <duration>" makes it sleep there
// instead (a slow operation).
package faultinject

// EnvFile is the environment variable naming the file that holds the point to kill at.
const EnvFile = "NODED_FAULTINJECT_FILE"

// Points lists every named kill point, in the order an operation reaches them. Call sites use these names.
var Points = []string{
	SandboxIntent, SandboxPinned, SandboxPodInit, SandboxNetworkIntent, SandboxNetworkAdded, SandboxReady,
	ContainerIntent, ContainerRootfs, ContainerBundle, ContainerRuntimeCreated, ContainerCreated,
	ContainerStartIntent, ContainerStarted, ContainerStartRecorded,
	ContainerStopSignalled, ContainerStopKilled, ContainerExitRecorded,
	SandboxStopContainers, SandboxStopNetwork,
	ContainerRemoveIntent, ContainerRemoveRuntime, ContainerRemoveCleaned,
	SandboxRemoveContainers, SandboxRemoveNetwork, SandboxRemoveTornDown,
	ImageDownload, ImageUnpack, ImageLayerCommitted, ImageRecord,
}

// Kill point names.
const (
	SandboxIntent           = "sandbox.run.intent"         // record written, nothing made
	SandboxPinned           = "sandbox.run.pinned"         // namespaces pinned
	SandboxPodInit          = "sandbox.run.podinit"        // pod init (shared PID namespace) running
	SandboxNetworkIntent    = "sandbox.run.network-intent" // about to call CNI ADD
	SandboxNetworkAdded     = "sandbox.run.network-added"  // CNI ADD done, result not recorded
	SandboxReady            = "sandbox.run.ready"          // ready recorded, reply not sent
	SandboxStopContainers   = "sandbox.stop.containers"    // containers stopped, network still up
	SandboxStopNetwork      = "sandbox.stop.network"       // CNI DEL done, not recorded
	SandboxRemoveContainers = "sandbox.remove.containers"  // containers removed, sandbox not torn down
	SandboxRemoveNetwork    = "sandbox.remove.network"     // network torn down, namespaces still pinned
	SandboxRemoveTornDown   = "sandbox.remove.torndown"    // everything undone, record not deleted

	ContainerIntent         = "container.create.intent"  // record written, nothing made
	ContainerRootfs         = "container.create.rootfs"  // snapshot prepared and mounted, conmon waiting to start
	ContainerBundle         = "container.create.bundle"  // config.json written (temporary name), runtime not called
	ContainerRuntimeCreated = "container.create.runtime" // runtime container created, not recorded
	ContainerCreated        = "container.create.created" // created recorded, reply not sent
	ContainerStartIntent    = "container.start.intent"   // about to call the runtime's start
	ContainerStarted        = "container.start.started"  // user process running, not recorded
	ContainerStartRecorded  = "container.start.recorded" // running in the index, its deferred write not on disk
	ContainerStopSignalled  = "container.stop.signalled" // stop signal sent, exit not seen
	ContainerStopKilled     = "container.stop.killed"    // SIGKILL sent, exit not recorded
	ContainerExitRecorded   = "container.exit.recorded"  // exit in the index, its deferred write not on disk
	ContainerRemoveIntent   = "container.remove.intent"  // about to remove
	ContainerRemoveRuntime  = "container.remove.runtime" // runtime state deleted, rootfs still mounted
	ContainerRemoveCleaned  = "container.remove.cleaned" // everything removed, record not deleted

	ImageDownload       = "image.pull.download"        // a layer blob partly downloaded
	ImageUnpack         = "image.pull.unpack"          // a layer partly unpacked into its snapshot
	ImageLayerCommitted = "image.pull.layer-committed" // a layer snapshot committed, image not recorded
	ImageRecord         = "image.pull.record"          // every layer committed, about to record the image
)
