package listcodec

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func labels(i int) map[string]string {
	return map[string]string{"io.kubernetes.pod.name": fmt.Sprintf("web-%d", i), "io.kubernetes.pod.namespace": "default",
		"io.kubernetes.container.name": "app"}
}

func containers(n int) []*runtimeapi.Container {
	var out []*runtimeapi.Container
	for i := 0; i < n; i++ {
		out = append(out, &runtimeapi.Container{
			Id: fmt.Sprintf("c%d", i), PodSandboxId: fmt.Sprintf("p%d", i),
			Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: uint32(i)},
			Image:    &runtimeapi.ImageSpec{Image: "busybox:latest"}, ImageRef: "sha256:abc",
			State: runtimeapi.ContainerState_CONTAINER_RUNNING, CreatedAt: int64(i + 1),
			Labels: labels(i), Annotations: map[string]string{"io.kubernetes.container.hash": "a1b2"},
		})
	}
	return out
}

func sandboxes(n int) []*runtimeapi.PodSandbox {
	var out []*runtimeapi.PodSandbox
	for i := 0; i < n; i++ {
		out = append(out, &runtimeapi.PodSandbox{
			Id: fmt.Sprintf("p%d", i), Metadata: &runtimeapi.PodSandboxMetadata{Name: fmt.Sprintf("web-%d", i), Uid: "u"},
			State: runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: int64(i + 1), Labels: labels(i),
			RuntimeHandler: "runc",
		})
	}
	return out
}

func stats(n int) []*runtimeapi.ContainerStats {
	var out []*runtimeapi.ContainerStats
	for i := 0; i < n; i++ {
		st := &runtimeapi.ContainerStats{
			Cpu:    &runtimeapi.CpuUsage{Timestamp: int64(i), UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: uint64(i * 7)}},
			Memory: &runtimeapi.MemoryUsage{Timestamp: int64(i), WorkingSetBytes: &runtimeapi.UInt64Value{Value: 4096}},
		}
		if i%3 != 0 { // some entries have no attributes
			st.Attributes = &runtimeapi.ContainerAttributes{Id: fmt.Sprintf("c%d", i),
				Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Labels: labels(i)}
		}
		out = append(out, st)
	}
	return out
}

// roundTrip encodes m with the codec and decodes it with the plain protobuf decoder into a new message of m's type.
func roundTrip(t *testing.T, c *Codec, m proto.Message) proto.Message {
	t.Helper()
	data, err := c.Marshal(m)
	if err != nil {
		t.Fatalf("Marshal %T: %v", m, err)
	}
	got := m.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(data.Materialize(), got); err != nil {
		t.Fatalf("decoding the codec's %T: %v", m, err)
	}
	return got
}

// Each response the codec assembles decodes to the message it was given, the first time (encodings made) and
// the second (encodings kept), with unknown fields kept too.
func TestListResponsesDecodeToTheSameMessage(t *testing.T) {
	c := New()
	ctrs, sbs, sts := containers(5), sandboxes(4), stats(6)
	withUnknown := &runtimeapi.ListContainersResponse{Containers: ctrs}
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7))
	msgs := []proto.Message{
		&runtimeapi.ListContainersResponse{Containers: ctrs},
		&runtimeapi.ListContainersResponse{},
		withUnknown,
		&runtimeapi.StreamContainersResponse{Containers: ctrs[:2]},
		&runtimeapi.ListPodSandboxResponse{Items: sbs},
		&runtimeapi.StreamPodSandboxesResponse{PodSandboxes: sbs[1:]},
		&runtimeapi.ListContainerStatsResponse{Stats: sts},
		&runtimeapi.StreamContainerStatsResponse{ContainerStats: sts[:3]},
		&runtimeapi.ListContainersResponse{Containers: []*runtimeapi.Container{{}}}, // an entry that encodes to nothing
	}
	for pass := 0; pass < 2; pass++ {
		for _, m := range msgs {
			if got := roundTrip(t, c, m); !proto.Equal(got, m) {
				t.Errorf("pass %d: %T decodes to\n%v\nwant\n%v", pass, m, got, m)
			}
		}
	}
	if n := c.containers.Len(); n != 6 {
		t.Errorf("%d container encodings kept, want 6 (one per entry object)", n)
	}
	if n := c.stats.Len(); n != 6 {
		t.Errorf("%d stats encodings kept, want 6", n)
	}
}

// A new stats entry (the next sample) is encoded anew, beside the kept encoding of the old one.
func TestNewStatsEntryEncodedAnew(t *testing.T) {
	c := New()
	sts := stats(2)
	roundTrip(t, c, &runtimeapi.ListContainerStatsResponse{Stats: sts})
	next := &runtimeapi.ListContainerStatsResponse{}
	for _, st := range sts {
		next.Stats = append(next.Stats, &runtimeapi.ContainerStats{Attributes: st.Attributes,
			Cpu: &runtimeapi.CpuUsage{Timestamp: 99, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: 12345}}})
	}
	if got := roundTrip(t, c, next); !proto.Equal(got, next) {
		t.Errorf("second sample decodes to %v, want %v", got, next)
	}
}

// The codec relies on each list response having its entries as field 1 and no other field: a cri-api that adds
// one must fail here rather than have the field dropped on the wire.
func TestListResponsesHaveOnlyTheirEntries(t *testing.T) {
	for _, m := range []proto.Message{
		&runtimeapi.ListContainersResponse{}, &runtimeapi.StreamContainersResponse{},
		&runtimeapi.ListPodSandboxResponse{}, &runtimeapi.StreamPodSandboxesResponse{},
		&runtimeapi.ListContainerStatsResponse{}, &runtimeapi.StreamContainerStatsResponse{},
	} {
		fields := m.ProtoReflect().Descriptor().Fields()
		if fields.Len() != 1 {
			t.Errorf("%T has %d fields, want 1", m, fields.Len())
			continue
		}
		f := fields.Get(0)
		if f.Number() != entriesField || f.Cardinality() != protoreflect.Repeated || f.Kind() != protoreflect.MessageKind {
			t.Errorf("%T field %s is not a repeated message numbered 1", m, f.Name())
		}
	}
}

// Other messages go through gRPC's codec unchanged, both ways.
func TestOtherMessagesDelegate(t *testing.T) {
	c := New()
	m := &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "noded"}
	data, err := c.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var got runtimeapi.VersionResponse
	if err := c.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, m) {
		t.Errorf("decoded %v, want %v", &got, m)
	}
	if _, err := c.Marshal("not a message"); err == nil {
		t.Error("Marshal of a non-message succeeded")
	}
	if c.Name() != "proto" {
		t.Errorf("Name = %q", c.Name())
	}
	var nilEntry = &runtimeapi.ListContainersResponse{Containers: []*runtimeapi.Container{nil}}
	if _, err := c.Marshal(nilEntry); err == nil {
		t.Error("Marshal of a nil entry succeeded")
	}
}

// BenchmarkListContainers250 encodes a 250-entry ListContainersResponse with gRPC's codec and with this one
// (entries kept from the previous call, as in kubelet's relist).
func BenchmarkListContainers250(b *testing.B) {
	benchCodecs(b, &runtimeapi.ListContainersResponse{Containers: containers(250)})
}

// BenchmarkListContainerStats250 encodes a 250-entry ListContainerStatsResponse with gRPC's codec and with this
// one (entries kept from the previous call: calls between two collection passes).
func BenchmarkListContainerStats250(b *testing.B) {
	benchCodecs(b, &runtimeapi.ListContainerStatsResponse{Stats: stats(250)})
}

func benchCodecs(b *testing.B, resp proto.Message) {
	for _, bc := range []struct {
		name  string
		codec interface {
			Marshal(any) (mem.BufferSlice, error)
		}
	}{{"grpc", New().base}, {"listcodec", New()}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				data, err := bc.codec.Marshal(resp)
				if err != nil {
					b.Fatal(err)
				}
				data.Free()
			}
		})
	}
}
