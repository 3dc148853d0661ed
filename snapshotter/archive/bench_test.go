package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchLayer is a layer shaped like a typical image layer: many small files, some large ones.
func benchLayer(b *testing.B) []byte {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for d := range 50 {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("usr/lib/d%02d/", d), Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			b.Fatal(err)
		}
		for f := range 40 {
			size := 2 << 10
			if f%10 == 0 {
				size = 512 << 10
			}
			name := fmt.Sprintf("usr/lib/d%02d/f%03d", d, f)
			if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)}); err != nil {
				b.Fatal(err)
			}
			if _, err := tw.Write(data[:size]); err != nil {
				b.Fatal(err)
			}
			if f%20 == 1 {
				if err := tw.WriteHeader(&tar.Header{Name: name + ".so", Typeflag: tar.TypeSymlink, Linkname: filepath.Base(name)}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkApply reports unpack throughput (MB/s of uncompressed tar) into a fresh directory under
// $NODED_BENCH_DIR or the test temp dir. GNU tar -x of the same layer is the natural baseline.
func BenchmarkApply(b *testing.B) {
	needRoot(b)
	layer := benchLayer(b)
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			b.SetBytes(int64(len(layer)))
			parent := b.TempDir()
			if d := os.Getenv("NODED_BENCH_DIR"); d != "" { // e.g. a tmpfs, to see the unpacker's own cost
				parent = d
			}
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				dir := filepath.Join(parent, fmt.Sprint(i))
				if err := os.Mkdir(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := Apply(context.Background(), dir, bytes.NewReader(layer), Options{NoSync: !sync}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := os.RemoveAll(dir); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
