// Package listcodec is the gRPC codec of noded's CRI server: gRPC's protobuf codec, except that the responses of
// the list calls kubelet repeats every second (ListContainers, ListPodSandbox, ListContainerStats and their
// streaming forms) reuse the encoding of each entry they share with an earlier response instead of encoding every
// entry, labels and annotations included, on every call. The entries the managers return are shared objects that
// are never modified (see weakmemo), so an entry's encoding is kept for as long as the entry lives: container and
// sandbox entries live as long as their store record, stats entries as long as the collection's sample they
// show (stats.collection_period). An entry made for one call only is encoded once and its encoding dropped
// with it. The bytes on the wire are a valid encoding of the same message: a client cannot tell the difference.
package listcodec

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the codec this one delegates to
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/internal/weakmemo"
)

// Name is the codec's name, the one of gRPC's protobuf codec it stands in for.
const Name = "proto"

// Codec implements encoding.CodecV2. Install it with grpc.ForceServerCodecV2. It is safe for concurrent use.
type Codec struct {
	base       encoding.CodecV2
	containers weakmemo.Memo[runtimeapi.Container, []byte]
	sandboxes  weakmemo.Memo[runtimeapi.PodSandbox, []byte]
	stats      weakmemo.Memo[runtimeapi.ContainerStats, []byte]
}

// New returns a Codec delegating everything but the list responses to gRPC's protobuf codec.
func New() *Codec {
	return &Codec{base: encoding.GetCodecV2(Name)}
}

// Name returns "proto".
func (c *Codec) Name() string { return Name }

// Unmarshal decodes as gRPC's protobuf codec does.
func (c *Codec) Unmarshal(data mem.BufferSlice, v any) error { return c.base.Unmarshal(data, v) }

// Marshal encodes v; list responses are assembled from their entries' kept encodings.
func (c *Codec) Marshal(v any) (mem.BufferSlice, error) {
	var (
		b   []byte
		err error
	)
	switch m := v.(type) {
	case *runtimeapi.ListContainersResponse:
		b, err = assemble(m.ProtoReflect().GetUnknown(), m.GetContainers(), &c.containers)
	case *runtimeapi.StreamContainersResponse:
		b, err = assemble(m.ProtoReflect().GetUnknown(), m.GetContainers(), &c.containers)
	case *runtimeapi.ListPodSandboxResponse:
		b, err = assemble(m.ProtoReflect().GetUnknown(), m.GetItems(), &c.sandboxes)
	case *runtimeapi.StreamPodSandboxesResponse:
		b, err = assemble(m.ProtoReflect().GetUnknown(), m.GetPodSandboxes(), &c.sandboxes)
	case *runtimeapi.ListContainerStatsResponse:
		b, err = assemble(m.ProtoReflect().GetUnknown(), m.GetStats(), &c.stats)
	case *runtimeapi.StreamContainerStatsResponse:
		b, err = assemble(m.ProtoReflect().GetUnknown(), m.GetContainerStats(), &c.stats)
	default:
		return c.base.Marshal(v)
	}
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// Each list response above has its entries as field 1 and no other field.
const entriesField protowire.Number = 1

// encoded returns the kept encoding of m, made now if there is none. An empty result (an empty message, or one
// that does not encode, which is kept as nil) is encoded again here, so that an error is reported on every call.
func encoded[T any, P interface {
	*T
	proto.Message
}](memo *weakmemo.Memo[T, []byte], m P) ([]byte, error) {
	enc := memo.Get((*T)(m), func(t *T) []byte {
		b, _ := proto.Marshal(P(t))
		return b
	})
	if len(enc) == 0 {
		return proto.Marshal(m)
	}
	return enc, nil
}

// assemble encodes a response whose entries are items, each from its kept encoding.
func assemble[T any, P interface {
	*T
	proto.Message
}](unknown []byte, items []P, memo *weakmemo.Memo[T, []byte]) ([]byte, error) {
	encs := make([][]byte, len(items))
	size := len(unknown)
	for i, it := range items {
		if it == nil {
			return nil, fmt.Errorf("listcodec: entry %d is nil", i)
		}
		enc, err := encoded(memo, it)
		if err != nil {
			return nil, fmt.Errorf("listcodec: entry %d: %w", i, err)
		}
		encs[i] = enc
		size += protowire.SizeTag(entriesField) + protowire.SizeBytes(len(enc))
	}
	b := make([]byte, 0, size)
	for _, enc := range encs {
		b = protowire.AppendTag(b, entriesField, protowire.BytesType)
		b = protowire.AppendBytes(b, enc)
	}
	return append(b, unknown...), nil
}
