package cri

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

const canary = "CANARY-SECRET"

// secretMessages are CRI messages with a canary in every field that must not be logged, and harmless values
// (which must stay) beside them.
func secretMessages() []proto.Message {
	return []proto.Message{
		&runtimeapi.PullImageRequest{
			Image: &runtimeapi.ImageSpec{Image: "registry.example/app:1"},
			Auth: &runtimeapi.AuthConfig{Username: "alice", Password: canary + "-pw", Auth: canary + "-auth",
				ServerAddress: "registry.example", IdentityToken: canary + "-id", RegistryToken: canary + "-reg"},
		},
		&runtimeapi.CreateContainerRequest{
			PodSandboxId: "pod1",
			Config: &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
				Envs: []*runtimeapi.KeyValue{
					{Key: "DB_PASSWORD", Value: []byte(canary + "-env1")},
					{Key: "TOKEN", Value: []byte(canary + "-env2")},
				},
			},
		},
		&runtimeapi.ExecSyncResponse{Stdout: []byte(canary + "-out"), Stderr: []byte(canary + "-err"), ExitCode: 3},
		&runtimeapi.ExecResponse{Url: "http://127.0.0.1:10010/exec/" + canary + "tok"},
		&runtimeapi.AttachResponse{Url: "http://127.0.0.1:10010/attach/" + canary + "tok?x=" + canary},
		&runtimeapi.PortForwardResponse{Url: "https://u:" + canary + "@[::1]:10010/portforward/" + canary + "tok#" + canary},
	}
}

func TestRedactForLogHidesSecretsAndKeepsTheRest(t *testing.T) {
	for _, m := range secretMessages() {
		orig := proto.Clone(m)
		got := RedactForLog(m)
		text := fmt.Sprint(got)
		if strings.Contains(text, canary) {
			t.Errorf("%T: logged form holds a secret: %s", m, text)
		}
		if !proto.Equal(m, orig) {
			t.Errorf("%T: RedactForLog changed its argument", m)
		}
	}
	pull := RedactForLog(secretMessages()[0]).(*runtimeapi.PullImageRequest)
	if a := pull.GetAuth(); a.GetUsername() != "alice" || a.GetServerAddress() != "registry.example" || a.GetPassword() != Redacted ||
		a.GetAuth() != Redacted || a.GetIdentityToken() != Redacted || a.GetRegistryToken() != Redacted {
		t.Errorf("auth = %v", a)
	}
	if pull.GetImage().GetImage() != "registry.example/app:1" {
		t.Errorf("image = %v", pull.GetImage())
	}
	create := RedactForLog(secretMessages()[1]).(*runtimeapi.CreateContainerRequest)
	envs := create.GetConfig().GetEnvs()
	if len(envs) != 2 || envs[0].Key != "DB_PASSWORD" || envs[1].Key != "TOKEN" || string(envs[0].Value) != "[redacted 18 bytes]" {
		t.Errorf("envs = %v", envs)
	}
	if create.GetPodSandboxId() != "pod1" || create.GetConfig().GetMetadata().GetName() != "app" {
		t.Errorf("ids lost: %v", create)
	}
	ex := RedactForLog(secretMessages()[2]).(*runtimeapi.ExecSyncResponse)
	if ex.ExitCode != 3 || string(ex.Stdout) != "[redacted 17 bytes]" {
		t.Errorf("exec sync = %v", ex)
	}
	urls := map[string]string{
		RedactForLog(secretMessages()[3]).(*runtimeapi.ExecResponse).Url:        "http://127.0.0.1:10010/exec/" + Redacted,
		RedactForLog(secretMessages()[4]).(*runtimeapi.AttachResponse).Url:      "http://127.0.0.1:10010/attach/" + Redacted,
		RedactForLog(secretMessages()[5]).(*runtimeapi.PortForwardResponse).Url: "https://[::1]:10010/portforward/" + Redacted,
	}
	for got, want := range urls {
		if got != want {
			t.Errorf("url %q, want %q", got, want)
		}
	}
	if got := redactURL("not a url\x7f"); got != Redacted {
		t.Errorf("unparsable url: %q", got)
	}
}

func TestRedactForLogOfOtherValues(t *testing.T) {
	if RedactForLog(nil) != nil {
		t.Error("nil")
	}
	if got := RedactForLog("secret"); got != "(string)" {
		t.Errorf("non-proto value logged as %v", got)
	}
	var typedNil *runtimeapi.PullImageRequest
	if got := RedactForLog(typedNil); got != proto.Message(typedNil) {
		t.Errorf("typed nil: %v", got)
	}
	v := &runtimeapi.VersionResponse{RuntimeName: "noded"}
	if got := RedactForLog(v); !proto.Equal(got.(proto.Message), v) {
		t.Errorf("message without secrets changed: %v", got)
	}
}

// Every field of the CRI API that the API itself marks debug_redact is hidden, including ones added by a newer
// cri-api than this test knows of.
func TestRedactForLogCoversEveryDebugRedactField(t *testing.T) {
	fd, err := protoregistry.GlobalFiles.FindFileByPath(runtimeapi.File_staging_src_k8s_io_cri_api_pkg_apis_runtime_v1_api_proto.Path())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var walk func(protoreflect.MessageDescriptors)
	walk = func(ms protoreflect.MessageDescriptors) {
		for i := 0; i < ms.Len(); i++ {
			md := ms.Get(i)
			for j := 0; j < md.Fields().Len(); j++ {
				f := md.Fields().Get(j)
				if o, ok := f.Options().(*descriptorpb.FieldOptions); ok && o.GetDebugRedact() {
					n++
					if fieldRedaction(f) == 0 {
						t.Errorf("%s is debug_redact but not redacted", f.FullName())
					}
				}
			}
			walk(md.Messages())
		}
	}
	walk(fd.Messages())
	if n == 0 {
		t.Fatal("no debug_redact field found: the check would pass vacuously")
	}
	// Each name in the own table names a real field (a typo would silently redact nothing).
	for name := range sensitiveFields {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, ok := d.(protoreflect.FieldDescriptor); !ok {
			t.Errorf("%s is not a field", name)
		}
	}
}

// The interceptor's log at -v=4 shows the calls but none of the secrets.
func TestInterceptorLogHasNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for k, v := range map[string]string{"v": "4", "logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "10"} {
		if err := fs.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	klog.SetOutput(&buf)
	t.Cleanup(func() {
		_ = fs.Set("v", "0")
		_ = fs.Set("logtostderr", "true")
		klog.SetOutput(os.Stderr)
	})
	msgs := secretMessages()
	for i := 0; i+1 < len(msgs); i += 2 {
		logCall("/runtime.v1.RuntimeService/Test", msgs[i], msgs[i+1], nil, 0)
	}
	klog.Flush()
	out := buf.String()
	if strings.Count(out, `"RPC"`) != len(msgs)/2 {
		t.Fatalf("expected %d RPC lines, log:\n%s", len(msgs)/2, out)
	}
	if strings.Contains(out, canary) {
		t.Fatalf("log holds a secret:\n%s", out)
	}
	if !strings.Contains(out, "DB_PASSWORD") || !strings.Contains(out, "alice") {
		t.Errorf("log lost the harmless fields:\n%s", out)
	}
}
