package cri

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/noded/noded/errdefs"
)

// CallObserver receives every finished call: its full method name, gRPC status code and latency.
type CallObserver func(method string, code codes.Code, latency time.Duration)

// UnaryInterceptor logs requests at -v=4 with their latency (secrets redacted), turns panics into Internal errors and maps the
// project's error kinds to gRPC codes. It is the one place where errors become gRPC statuses.
func UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	return ObservedUnaryInterceptor(nil)(ctx, req, info, handler)
}

// StreamInterceptor does for streaming RPCs what UnaryInterceptor does for unary ones.
func StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	return ObservedStreamInterceptor(nil)(srv, ss, info, handler)
}

// ObservedUnaryInterceptor is UnaryInterceptor that also reports each call to obs (if not nil).
func ObservedUnaryInterceptor(obs CallObserver) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				klog.ErrorS(fmt.Errorf("panic: %v", r), "RPC handler panicked", "method", info.FullMethod, "stack", string(debug.Stack()))
				resp, err = nil, status.Errorf(codes.Internal, "%s: internal error: %v", info.FullMethod, r)
			}
			err = errdefs.ToGRPC(err)
			d := time.Since(start)
			logCall(info.FullMethod, req, resp, err, d)
			if obs != nil {
				obs(info.FullMethod, status.Code(err), d)
			}
		}()
		return handler(ctx, req)
	}
}

// ObservedStreamInterceptor is StreamInterceptor that also reports each call to obs (if not nil).
func ObservedStreamInterceptor(obs CallObserver) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				klog.ErrorS(fmt.Errorf("panic: %v", r), "stream handler panicked", "method", info.FullMethod, "stack", string(debug.Stack()))
				err = status.Errorf(codes.Internal, "%s: internal error: %v", info.FullMethod, r)
			}
			err = errdefs.ToGRPC(err)
			d := time.Since(start)
			logCall(info.FullMethod, nil, nil, err, d)
			if obs != nil {
				obs(info.FullMethod, status.Code(err), d)
			}
		}()
		return handler(srv, ss)
	}
}

func logCall(method string, req, resp any, err error, d time.Duration) {
	if err != nil {
		code := status.Code(err)
		kv := append([]any{"method", method, "code", code.String(), "latency", d}, idKeys(req)...)
		// Expected answers (NotFound on a status poll, Unimplemented) are not errors of noded.
		if code == codes.NotFound || code == codes.Unimplemented || code == codes.AlreadyExists || code == codes.Canceled {
			klog.V(4).InfoS("RPC failed", append(kv, "err", err)...)
		} else {
			klog.ErrorS(err, "RPC failed", kv...)
		}
		return
	}
	if klogV := klog.V(4); klogV.Enabled() {
		// Never the messages themselves: they hold registry credentials, Secrets in env values, exec output
		// and streaming tokens (see RedactForLog).
		klogV.InfoS("RPC", "method", method, "latency", d, "request", RedactForLog(req), "response", RedactForLog(resp))
	}
}

// idKeys returns the pod sandbox and container IDs a request names, as log keys, so failures can be found by ID.
func idKeys(req any) []any {
	var kv []any
	if r, ok := req.(interface{ GetPodSandboxId() string }); ok && r.GetPodSandboxId() != "" {
		kv = append(kv, "podSandboxID", r.GetPodSandboxId())
	}
	if r, ok := req.(interface{ GetContainerId() string }); ok && r.GetContainerId() != "" {
		kv = append(kv, "containerID", r.GetContainerId())
	}
	return kv
}
