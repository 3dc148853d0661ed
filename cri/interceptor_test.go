package cri

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/noded/noded/errdefs"
)

func TestUnaryInterceptorMapsErrorsAndRecoversPanics(t *testing.T) {
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/Test"}
	cases := []struct {
		name    string
		handler grpc.UnaryHandler
		want    codes.Code
	}{
		{"ok", func(context.Context, any) (any, error) { return "x", nil }, codes.OK},
		{"not found", func(context.Context, any) (any, error) { return nil, errdefs.NotFound("pod %s", "p") }, codes.NotFound},
		{"wrapped exists", func(context.Context, any) (any, error) {
			return nil, fmt.Errorf("create: %w", errdefs.AlreadyExists("name"))
		}, codes.AlreadyExists},
		{"invalid", func(context.Context, any) (any, error) { return nil, errdefs.InvalidArgument("bad") }, codes.InvalidArgument},
		{"precondition", func(context.Context, any) (any, error) { return nil, errdefs.FailedPrecondition("no") }, codes.FailedPrecondition},
		{"deadline", func(context.Context, any) (any, error) { return nil, fmt.Errorf("x: %w", context.DeadlineExceeded) }, codes.DeadlineExceeded},
		{"plain", func(context.Context, any) (any, error) { return nil, errors.New("boom") }, codes.Unknown},
		{"grpc status kept", func(context.Context, any) (any, error) { return nil, status.Error(codes.Aborted, "a") }, codes.Aborted},
		{"panic", func(context.Context, any) (any, error) { panic("kaboom") }, codes.Internal},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := UnaryInterceptor(context.Background(), nil, info, c.handler)
			if got := status.Code(err); got != c.want {
				t.Fatalf("code = %v (%v), want %v", got, err, c.want)
			}
			if c.want == codes.Internal && !strings.Contains(status.Convert(err).Message(), "kaboom") {
				t.Fatalf("panic message lost: %v", err)
			}
		})
	}
}
