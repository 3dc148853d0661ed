package testimage

import (
	"fmt"
	"math/rand/v2"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// NonRootUID is the USER of NonRootUser images.
const NonRootUID = 1002

// NonRootUser returns base running as USER 1002 (an account not in
// /etc/passwd, like critest's test-image-user-uid).
func NonRootUser(base v1.Image) (v1.Image, error) {
	return WithUser(base, fmt.Sprint(NonRootUID))
}

// WhiteoutExpectation lists what a correct unpacking of MultiLayerWhiteouts
// shows and hides.
type WhiteoutExpectation struct {
	// Present maps visible regular files to their expected content.
	Present map[string]string
	// Absent lists paths that must not exist.
	Absent []string
}

// MultiLayerWhiteouts returns base (may be nil for a bare image) plus three
// layers that add files, delete one with a .wh. whiteout, delete a whole
// directory, make a directory opaque with .wh..wh..opq and overwrite a file,
// together with what must be visible in the result.
func MultiLayerWhiteouts(base v1.Image, c Compression, f Format) (v1.Image, WhiteoutExpectation, error) {
	l1 := NewFS()
	l1.WriteFile("/wh/keep.txt", []byte("keep\n"), 0o644)
	l1.WriteFile("/wh/remove.txt", []byte("remove\n"), 0o644)
	l1.WriteFile("/wh/replace.txt", []byte("v1\n"), 0o644)
	l1.WriteFile("/wh/opaque/old.txt", []byte("old\n"), 0o644)
	l1.WriteFile("/wh/opaque/sub/old2.txt", []byte("old2\n"), 0o644)
	l1.WriteFile("/wh/gone/a.txt", []byte("a\n"), 0o644)
	l1.WriteFile("/wh/gone/deep/b.txt", []byte("b\n"), 0o644)

	l2 := NewFS()
	l2.Whiteout("/wh/remove.txt")
	l2.Opaque("/wh/opaque")
	l2.WriteFile("/wh/opaque/new.txt", []byte("new\n"), 0o644)
	l2.WriteFile("/wh/replace.txt", []byte("v2\n"), 0o644)
	l2.WriteFile("/wh/added.txt", []byte("added\n"), 0o644)

	l3 := NewFS()
	l3.Whiteout("/wh/gone")
	l3.WriteFile("/wh/late.txt", []byte("late\n"), 0o644)
	l3.WriteFile("/wh/remove.txt.bak", []byte("not a whiteout\n"), 0o644)

	want := WhiteoutExpectation{
		Present: map[string]string{
			"/wh/keep.txt":       "keep\n",
			"/wh/replace.txt":    "v2\n",
			"/wh/opaque/new.txt": "new\n",
			"/wh/added.txt":      "added\n",
			"/wh/late.txt":       "late\n",
			"/wh/remove.txt.bak": "not a whiteout\n",
		},
		Absent: []string{
			"/wh/remove.txt", "/wh/opaque/old.txt", "/wh/opaque/sub", "/wh/gone",
			"/wh/.wh.remove.txt", "/wh/opaque/.wh..wh..opq", "/wh/.wh.gone",
		},
	}
	img, err := stack(base, c, f, l1, l2, l3)
	return img, want, err
}

// stack returns base (nil: none) plus one layer per tree.
func stack(base v1.Image, c Compression, f Format, trees ...*FS) (v1.Image, error) {
	var layers []v1.Layer
	cfg := v1.Config{Env: []string{DefaultPath}}
	if base != nil {
		bl, err := base.Layers()
		if err != nil {
			return nil, fmt.Errorf("base layers: %w", err)
		}
		layers = append(layers, bl...)
		cf, err := base.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("base config: %w", err)
		}
		cfg = *cf.Config.DeepCopy()
	}
	for _, t := range trees {
		l, err := LayerFromFS(t, c, f)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	return Assemble(layers, cfg, f, nil)
}

// ManyLayers returns base (may be nil) plus n tiny layers; layer i adds
// /layers/NNNN holding "layer i".
func ManyLayers(base v1.Image, n int, c Compression, f Format) (v1.Image, error) {
	trees := make([]*FS, n)
	for i := range trees {
		trees[i] = NewFS()
		trees[i].WriteFile(fmt.Sprintf("/layers/%04d", i), []byte(fmt.Sprintf("layer %d\n", i)), 0o644)
	}
	return stack(base, c, f, trees...)
}

// LargeOptions sizes a Large image.
type LargeOptions struct {
	Layers     int    // number of generated layers (default 10)
	LayerBytes int    // uncompressed file bytes per layer (default 21 MiB)
	Seed       uint64 // generator seed; different seeds give different images
}

// Large returns base (may be nil) plus generated layers (by default 10 of
// 21 MiB, 210 MiB in all) of files whose content resembles text and binary
// data: compressible, but not trivially. The content is a pure function of
// the options.
func Large(base v1.Image, o LargeOptions, c Compression, f Format) (v1.Image, error) {
	if o.Layers <= 0 {
		o.Layers = 10
	}
	if o.LayerBytes <= 0 {
		o.LayerBytes = 21 << 20
	}
	trees := make([]*FS, o.Layers)
	for i := range trees {
		rng := rand.New(rand.NewPCG(o.Seed, uint64(i)))
		trees[i] = NewFS()
		for n, total := 0, 0; total < o.LayerBytes; n++ {
			size := 4<<10 + rng.IntN(1<<20)
			if total+size > o.LayerBytes {
				size = o.LayerBytes - total
			}
			var data []byte
			var name string
			if rng.IntN(5) < 3 {
				data, name = genText(rng, size), fmt.Sprintf("/large/%02d/doc-%04d.txt", i, n)
			} else {
				data, name = genBinary(rng, size), fmt.Sprintf("/large/%02d/lib-%04d.so", i, n)
			}
			trees[i].WriteFile(name, data, 0o644)
			total += size
		}
	}
	return stack(base, c, f, trees...)
}

// vocabulary is a fixed word list for genText.
var vocabulary = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his
from at which but have an they you were her she there been one all we their has would when if so no will
can more other its who than some them these may then do first any my now such like our over man me even
most made after also did many before must through back years where much your way well down should because
each just those people how too little state good very make world still own see men work long get here
between both life being under never day same another know while last might us great old year off come
since against go came right used take three container runtime image layer snapshot digest manifest index
registry mirror sandbox kernel namespace cgroup memory process signal socket network bridge address route
kubelet pod node cluster volume mount overlay device config default option error value return function
package module version build release debian stable security update install remove purge archive`)

func genText(rng *rand.Rand, size int) []byte {
	var b strings.Builder
	b.Grow(size + 64)
	for b.Len() < size {
		words := 4 + rng.IntN(12)
		for w := 0; w < words; w++ {
			if w > 0 {
				b.WriteByte(' ')
			}
			switch rng.IntN(20) {
			case 0:
				fmt.Fprintf(&b, "%d", rng.IntN(100000))
			case 1:
				fmt.Fprintf(&b, "0x%08x", rng.Uint32())
			default:
				b.WriteString(vocabulary[rng.IntN(len(vocabulary))])
			}
		}
		b.WriteString(".\n")
	}
	return []byte(b.String()[:size])
}

// genBinary yields bytes with a skewed distribution and repeated runs, in
// the way machine code and tables compress: about 2:1 with gzip.
func genBinary(rng *rand.Rand, size int) []byte {
	out := make([]byte, 0, size)
	for len(out) < size {
		switch rng.IntN(8) {
		case 0: // a run copied from earlier output
			if len(out) > 64 {
				n := 8 + rng.IntN(56)
				start := rng.IntN(len(out) - n)
				out = append(out, out[start:start+n]...)
				continue
			}
			fallthrough
		case 1: // zero padding
			for j := rng.IntN(32); j > 0; j-- {
				out = append(out, 0)
			}
		default: // small values are likelier than large ones
			for j := 8 + rng.IntN(24); j > 0; j-- {
				v := rng.ExpFloat64() * 24
				if v > 255 {
					v = 255
				}
				out = append(out, byte(v))
			}
		}
	}
	return out[:size]
}

// MultiPlatformEntries are the platforms of MultiPlatform, in index order.
var MultiPlatformEntries = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
	{OS: "linux", Architecture: "arm", Variant: "v7"},
}

// PlatformString renders a platform as os/arch[/variant].
func PlatformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// MultiPlatform returns an index with one image per MultiPlatformEntries
// platform. Each image has a top layer holding /platform with the platform
// string, so a test can tell which manifest was picked. The amd64 image is
// amd64Base (may be nil) plus that layer, so it also runs on this machine; the
// others hold only that layer.
func MultiPlatform(amd64Base v1.Image, c Compression, f Format) (v1.ImageIndex, error) {
	var entries []PlatformImage
	for _, p := range MultiPlatformEntries {
		t := NewFS()
		t.WriteFile("/platform", []byte(PlatformString(p)+"\n"), 0o644)
		var base v1.Image
		if p.Architecture == "amd64" {
			base = amd64Base
		}
		img, err := stack(base, c, f, t)
		if err != nil {
			return nil, err
		}
		plat := p
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		if img, err = setConfig(img, *cf.Config.DeepCopy(), &plat); err != nil {
			return nil, err
		}
		entries = append(entries, PlatformImage{Platform: plat, Image: img})
	}
	return Index(f, entries...)
}
