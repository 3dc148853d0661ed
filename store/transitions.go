package store

import "github.com/noded/noded/errdefs"

// The legal state changes of each record type; UpdateSandbox and UpdateContainer refuse any other with
// FailedPrecondition (and leave the record as it was). Staying in a state is always legal. A record starts in its
// creating state (AddSandbox, AddContainer) and ends by deletion, which is legal from any state.
var (
	sandboxTransitions = map[SandboxState][]SandboxState{
		// Set up, or a rollback that could not undo everything.
		SandboxCreating: {SandboxReady, SandboxUnknown},
		// Stopped (or its namespaces found gone at recovery), or a removal that could not undo everything.
		SandboxReady:    {SandboxNotReady, SandboxUnknown},
		SandboxNotReady: {SandboxUnknown},
		// A Stop of an unknown sandbox without a recorded error.
		SandboxUnknown: {SandboxNotReady},
	}
	containerTransitions = map[ContainerState][]ContainerState{
		// Created; a rollback that could not undo everything; an exit recorded before the creation was.
		ContainerCreating: {ContainerCreated, ContainerUnknown, ContainerExited},
		// Started (or found running at recovery); a failed start, an exit or a lost runtime state; the runtime
		// not answering at recovery.
		ContainerCreated: {ContainerRunning, ContainerExited, ContainerUnknown},
		ContainerRunning: {ContainerExited, ContainerUnknown},
		// Its exit, or its runtime state found gone, is recorded.
		ContainerUnknown: {ContainerExited},
		ContainerExited:  {},
	}
)

func legal[S comparable](table map[S][]S, from, to S) bool {
	if from == to {
		return true
	}
	for _, s := range table[from] {
		if s == to {
			return true
		}
	}
	return false
}

// CheckSandboxTransition returns FailedPrecondition unless a sandbox may go from one state to the other.
func CheckSandboxTransition(id string, from, to SandboxState) error {
	if !legal(sandboxTransitions, from, to) {
		return errdefs.FailedPrecondition("pod sandbox %s cannot go from %s to %s", id, from, to)
	}
	return nil
}

// CheckContainerTransition returns FailedPrecondition unless a container may go from one state to the other.
func CheckContainerTransition(id string, from, to ContainerState) error {
	if !legal(containerTransitions, from, to) {
		return errdefs.FailedPrecondition("container %s cannot go from %s to %s", id, from, to)
	}
	return nil
}
