package integration

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// kubelet creates a container from the image's ID and puts the pod's image name in UserSpecifiedImage; it
// shows ContainerStatus.image as the pod's status.image, and specs that change a pod's image wait for the new
// name there (node e2e: "Containers Lifecycle ... an init container after a restartable init container
// Should begin initializing the pod"). Found by hack/e2e-node/run.sh.
func TestContainerStatusImageIsThePodsImageName(t *testing.T) {
	e := newPodEnv(t, 83, nil)
	podID, podCfg := e.newPod(t, "image-name")
	st, err := e.n.Image.ImageStatus(e.ctx, &runtimeapi.ImageSpec{Image: "busybox"}, false)
	if err != nil || st.GetImage() == nil {
		t.Fatalf("ImageStatus busybox: %v %v", st, err)
	}
	imageID := st.GetImage().GetId()
	id := e.runContainer(t, podID, podCfg, "by-id", func(c *runtimeapi.ContainerConfig) {
		c.Image = &runtimeapi.ImageSpec{Image: imageID, UserSpecifiedImage: "busybox"}
	}, "sleep", "60")
	cs, err := e.n.Runtime.ContainerStatus(e.ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := cs.GetStatus().GetImage().GetImage(); got != "busybox" {
		t.Errorf("ContainerStatus image %q, want the pod's image name busybox (created from %s)", got, imageID)
	}
	if got := cs.GetStatus().GetImageId(); got != imageID {
		t.Errorf("ContainerStatus image_id %q, want %s", got, imageID)
	}
	// Without UserSpecifiedImage (crictl), the image as given is reported.
	id2 := e.runContainer(t, podID, podCfg, "plain", nil, "sleep", "60")
	cs2, err := e.n.Runtime.ContainerStatus(e.ctx, id2, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := cs2.GetStatus().GetImage().GetImage(); got != "busybox" {
		t.Errorf("ContainerStatus image %q, want busybox", got)
	}
}
