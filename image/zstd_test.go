package image

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// zstdFrame is a zstd frame declaring a window of 1<<windowLog bytes, made of RLE blocks of 128 KiB ('a')
// that regenerate size bytes (rounded up to a block): a few bytes per block, so a tiny layer.
func zstdFrame(windowLog uint, size int64) []byte {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, uint32(0xFD2FB528))
	b.WriteByte(0)                           // frame header descriptor: no content size, not single-segment
	b.WriteByte(byte((windowLog - 10) << 3)) // window descriptor: exponent, mantissa 0
	const block = 128 << 10
	n := (size + block - 1) / block
	for i := int64(0); i < n; i++ {
		h := uint32(block<<3) | 1<<1 // RLE block of 128 KiB
		if i == n-1 {
			h |= 1 // last block
		}
		b.Write([]byte{byte(h), byte(h >> 8), byte(h >> 16), 'a'})
	}
	return b.Bytes()
}

// TestZstdWindowLimit: a layer asking for a 1 GiB window is refused; 512 MiB and less decode.
func TestZstdWindowLimit(t *testing.T) {
	rc, err := decompress(ocispec.MediaTypeImageLayerZstd, bytes.NewReader(zstdFrame(30, 1<<20)))
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "window") {
		t.Fatalf("1 GiB window: %v, want a window size error", err)
	}
	for _, log := range []uint{20, 29} {
		rc, err := decompress(ocispec.MediaTypeImageLayerZstd, bytes.NewReader(zstdFrame(log, 1<<20)))
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil || n != 1<<20 {
			t.Fatalf("window 1<<%d: %d bytes, %v", log, n, err)
		}
	}
}

// TestZstdWindowRSS measures the peak RSS of decoding a crafted layer (32 KiB) that declares a 1 GiB window and
// regenerates 1 GiB, in a child process: with noded's decoder, with the old one allowing 1 GiB windows, and
// with noded's on the largest window it accepts (512 MiB). It only reports; run it with NODED_MEASURE_ZSTD_RSS=1.
func TestZstdWindowRSS(t *testing.T) {
	if os.Getenv("NODED_ZSTD_RSS_CHILD") != "" {
		zstdRSSChild()
		return
	}
	if os.Getenv("NODED_MEASURE_ZSTD_RSS") == "" {
		t.Skip("a measurement: set NODED_MEASURE_ZSTD_RSS=1")
	}
	// noded's decoder on a 1 GiB window, on the largest window it allows, and the old decoder on 1 GiB.
	for _, window := range []string{"noded:30", "noded:29", "old:30"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestZstdWindowRSS$")
		cmd.Env = append(os.Environ(), "NODED_ZSTD_RSS_CHILD="+window)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		t.Logf("%s: %s", window, strings.TrimSpace(strings.Split(string(out), "\n")[0]))
	}
}

func zstdRSSChild() {
	which, logStr, _ := strings.Cut(os.Getenv("NODED_ZSTD_RSS_CHILD"), ":")
	log, _ := strconv.Atoi(logStr)
	frame := zstdFrame(uint(log), 1<<log)
	var n int64
	var err error
	if which == "noded" {
		var rc io.ReadCloser
		if rc, err = decompress(ocispec.MediaTypeImageLayerZstd, bytes.NewReader(frame)); err == nil {
			n, err = io.Copy(io.Discard, rc)
		}
	} else {
		n, err = decodeWithWindow(frame, 1<<30)
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("layer %d bytes, decoded %d bytes, err %v, max RSS %d MiB\n", len(frame), n, err, ru.Maxrss>>10)
	os.Exit(0)
}

func decodeWithWindow(frame []byte, window uint64) (int64, error) {
	zr, err := zstd.NewReader(bytes.NewReader(frame), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(window))
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	return io.Copy(io.Discard, zr)
}
