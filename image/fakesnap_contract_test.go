package image

import (
	"testing"

	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/snapshotter/testsuite"
)

// The in-memory snapshotter the image tests use is held to the part of the snapshotter contract that mounts
// nothing, so that what the image tests prove holds for the real one.
func TestFakeSnapshotterContract(t *testing.T) {
	testsuite.RunMetadata(t, func(*testing.T, string) snapshotter.Snapshotter { return newFakeSnapshotter() })
}
