package image

import (
	"context"
	"fmt"
	"math/rand"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/noded/noded/internal/testimage"
)

// BenchmarkPull measures pull+unpack throughput (uncompressed MB/s) from an in-process registry into the
// in-memory snapshotter, for each layer compression.
func BenchmarkPull(b *testing.B) {
	const layers, layerSize = 3, 8 << 20
	rnd := rand.New(rand.NewSource(1))
	alphabet := []byte("abcdefghijklmnopqrstuvwxyz0123456789 \n")
	var files []map[string]string
	for i := 0; i < layers; i++ {
		buf := make([]byte, layerSize)
		for j := range buf {
			buf[j] = alphabet[rnd.Intn(len(alphabet))]
		}
		files = append(files, map[string]string{fmt.Sprintf("layer%d/data", i): string(buf)})
	}
	for _, c := range []testimage.Compression{testimage.Gzip, testimage.Zstd, testimage.Uncompressed} {
		b.Run(string(c), func(b *testing.B) {
			reg := startRegistry(b)
			img := buildImage(b, c, testimage.OCI, v1.Config{}, nil, files...)
			reg.push(b, "bench:1", img)
			b.SetBytes(layers * layerSize)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				e := newEnv(b, plainHTTPConfig(reg.host))
				b.StartTimer()
				if _, err := e.svc.Pull(context.Background(), reg.host+"/bench:1", PullOptions{}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				e.svc.Close()
				b.StartTimer()
			}
		})
	}
}
