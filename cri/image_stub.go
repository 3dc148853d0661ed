package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type unimplementedImageServer struct {
	runtimeapi.UnimplementedImageServiceServer
}

// NewUnimplementedImageServer returns an ImageService that reports an empty image filesystem and answers
// Unimplemented for everything else.
func NewUnimplementedImageServer() runtimeapi.ImageServiceServer { return unimplementedImageServer{} }

func (unimplementedImageServer) ImageFsInfo(context.Context, *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	return &runtimeapi.ImageFsInfoResponse{}, nil
}
