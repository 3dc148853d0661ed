package cri

import (
	"fmt"
	"net/url"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Redacted replaces a secret string in logged CRI messages.
const Redacted = "[redacted]"

// redaction says how a field's value is hidden.
type redaction int

const (
	redactValue     redaction = iota + 1 // the whole value
	redactURLSecret                      // a streaming URL's token: everything after its first path segment
)

// sensitiveFields are the CRI fields whose values must never be logged, beside those the CRI marks
// debug_redact (the registry credentials of AuthConfig, listed here too so that a cri-api without the option
// keeps them hidden).
var sensitiveFields = map[protoreflect.FullName]redaction{
	"runtime.v1.AuthConfig.password":       redactValue,
	"runtime.v1.AuthConfig.auth":           redactValue,
	"runtime.v1.AuthConfig.identity_token": redactValue,
	"runtime.v1.AuthConfig.registry_token": redactValue,
	// Environment values of CreateContainer carry Secrets (env valueFrom secretKeyRef).
	"runtime.v1.KeyValue.value": redactValue,
	// What a probe or kubectl exec printed is the container's data.
	"runtime.v1.ExecSyncResponse.stdout": redactValue,
	"runtime.v1.ExecSyncResponse.stderr": redactValue,
	// The URLs of streaming sessions hold a token that opens the session to anyone for a while.
	"runtime.v1.ExecResponse.url":        redactURLSecret,
	"runtime.v1.AttachResponse.url":      redactURLSecret,
	"runtime.v1.PortForwardResponse.url": redactURLSecret,
}

// RedactForLog returns what of a CRI request or response may be logged: a copy of a protobuf message with the
// values of sensitive fields replaced (wherever the message type occurs, however deeply nested), and only the
// type of anything else. v itself is not changed.
func RedactForLog(v any) any {
	if v == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Sprintf("(%T)", v)
	}
	if !m.ProtoReflect().IsValid() { // a typed nil
		return m
	}
	c := proto.Clone(m)
	redactMessage(c.ProtoReflect())
	return c
}

func fieldRedaction(fd protoreflect.FieldDescriptor) redaction {
	if r, ok := sensitiveFields[fd.FullName()]; ok {
		return r
	}
	if o, ok := fd.Options().(*descriptorpb.FieldOptions); ok && o.GetDebugRedact() {
		return redactValue
	}
	return 0
}

func redactMessage(m protoreflect.Message) {
	type field struct {
		fd protoreflect.FieldDescriptor
		v  protoreflect.Value
	}
	// Collected first: a message is not to be changed while it is ranged over.
	var fields []field
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		fields = append(fields, field{fd, v})
		return true
	})
	for _, f := range fields {
		fd, v := f.fd, f.v
		if r := fieldRedaction(fd); r != 0 {
			if nv, ok := redactScalar(fd, v, r); ok {
				m.Set(fd, nv)
			} else {
				// Of a kind there is no placeholder for (a list or a message marked secret): drop it whole.
				m.Clear(fd)
			}
			continue
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				redactMessage(l.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				redactMessage(mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			redactMessage(v.Message())
		}
	}
}

// redactScalar returns the placeholder of a string or bytes value; false for other kinds.
func redactScalar(fd protoreflect.FieldDescriptor, v protoreflect.Value, r redaction) (protoreflect.Value, bool) {
	if fd.IsList() || fd.IsMap() {
		return protoreflect.Value{}, false
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		if r == redactURLSecret {
			return protoreflect.ValueOfString(redactURL(v.String())), true
		}
		return protoreflect.ValueOfString(Redacted), true
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(fmt.Sprintf("[redacted %d bytes]", len(v.Bytes())))), true
	}
	return protoreflect.Value{}, false
}

// redactURL keeps the scheme, host and first path segment of a streaming URL ("http://127.0.0.1:1234/exec/")
// and replaces the rest (the token), the query and the fragment.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return Redacted
	}
	kind, _, _ := strings.Cut(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	out := url.URL{Scheme: u.Scheme, Host: u.Host}
	return out.String() + "/" + kind + "/" + Redacted
}
