// Package listcodec is the gRPC codec of noded's CRI server: gRPC's protobuf codec, except that the responses of
// the list calls kubelet repeats every second (ListContainers, ListPodSandbox, ListContainerStats and their
// streaming forms) reuse the encoding of each entry they share with an earlier response instead of encoding every
// entry, labels and annotations included, on every call. The entries the managers return are shared objects that
// are never modified (see weakmemo), so an entry's encoding is kept for as long as the entry lives; entries
// made per call are encoded as gRPC's codec encodes them. The bytes on the wire are a valid encoding of the same
// message: a client cannot tell the difference.
package listcodec

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the codec this one delegates to
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
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
	attributes weakmemo.Memo[runtimeapi.ContainerAttributes, []byte]
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
		b, err = c.containerList(m.ProtoReflect().GetUnknown(), m.GetContainers())
	case *runtimeapi.StreamContainersResponse:
		b, err = c.containerList(m.ProtoReflect().GetUnknown(), m.GetContainers())
	case *runtimeapi.ListPodSandboxResponse:
		b, err = c.sandboxList(m.ProtoReflect().GetUnknown(), m.GetItems())
	case *runtimeapi.StreamPodSandboxesResponse:
		b, err = c.sandboxList(m.ProtoReflect().GetUnknown(), m.GetPodSandboxes())
	case *runtimeapi.ListContainerStatsResponse:
		b, err = c.statsList(m.ProtoReflect().GetUnknown(), m.GetStats())
	case *runtimeapi.StreamContainerStatsResponse:
		b, err = c.statsList(m.ProtoReflect().GetUnknown(), m.GetContainerStats())
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

func appendEntry(b []byte, entry []byte) []byte {
	b = protowire.AppendTag(b, entriesField, protowire.BytesType)
	return protowire.AppendBytes(b, entry)
}

func (c *Codec) containerList(unknown []byte, items []*runtimeapi.Container) ([]byte, error) {
	return assemble(unknown, items, &c.containers)
}

func (c *Codec) sandboxList(unknown []byte, items []*runtimeapi.PodSandbox) ([]byte, error) {
	return assemble(unknown, items, &c.sandboxes)
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
		b = appendEntry(b, enc)
	}
	return append(b, unknown...), nil
}

// statsList encodes a stats response: the attributes of each entry (its labels and annotations, the bulk of it)
// from their kept encoding, the counters, which change with every sample, as they are.
func (c *Codec) statsList(unknown []byte, items []*runtimeapi.ContainerStats) ([]byte, error) {
	var b []byte
	var entry []byte
	for i, st := range items {
		if st == nil {
			return nil, fmt.Errorf("listcodec: entry %d is nil", i)
		}
		entry = entry[:0]
		if a := st.GetAttributes(); a != nil {
			enc, err := encoded(&c.attributes, a)
			if err != nil {
				return nil, fmt.Errorf("listcodec: entry %d attributes: %w", i, err)
			}
			entry = protowire.AppendTag(entry, 1, protowire.BytesType)
			entry = protowire.AppendBytes(entry, enc)
		}
		// The rest of the entry: the message without its attributes (field 1), which come first above.
		rest, err := proto.MarshalOptions{}.MarshalAppend(entry, statsWithoutAttributes(st))
		if err != nil {
			return nil, fmt.Errorf("listcodec: entry %d: %w", i, err)
		}
		entry = rest
		b = appendEntry(b, entry)
	}
	return append(b, unknown...), nil
}

// statsWithoutAttributes is a shallow copy of st without its attributes (field 1), sharing the counters' messages.
func statsWithoutAttributes(st *runtimeapi.ContainerStats) proto.Message {
	src := st.ProtoReflect()
	dst := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Number() != 1 {
			dst.Set(fd, v)
		}
		return true
	})
	dst.SetUnknown(src.GetUnknown())
	return dst.Interface()
}
