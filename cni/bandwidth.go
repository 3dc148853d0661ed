package cni

import (
	"math/big"
	"strings"

	"github.com/noded/noded/errdefs"
)

// Pod annotations that request traffic shaping, in Kubernetes quantity syntax (bits per second).
const (
	IngressBandwidthAnnotation = "kubernetes.io/ingress-bandwidth"
	EgressBandwidthAnnotation  = "kubernetes.io/egress-bandwidth"
)

// Limits kubelet enforces on the bandwidth annotations.
const (
	minBandwidth = 1_000                 // 1k
	maxBandwidth = 1_000_000_000_000_000 // 1P
)

// ParseBandwidth reads the ingress/egress bandwidth annotations. It returns nil when neither is set, and an
// InvalidArgument error when a value is not a quantity or lies outside [1k, 1P] bits per second.
func ParseBandwidth(annotations map[string]string) (*Bandwidth, error) {
	in, hasIn := annotations[IngressBandwidthAnnotation]
	out, hasOut := annotations[EgressBandwidthAnnotation]
	if !hasIn && !hasOut {
		return nil, nil
	}
	var bw Bandwidth
	for _, a := range []struct {
		set  bool
		key  string
		val  string
		dest *uint64
	}{{hasIn, IngressBandwidthAnnotation, in, &bw.IngressRate}, {hasOut, EgressBandwidthAnnotation, out, &bw.EgressRate}} {
		if !a.set {
			continue
		}
		v, err := ParseQuantity(a.val)
		if err != nil {
			return nil, errdefs.InvalidArgument("annotation %s: %v", a.key, err)
		}
		if v < minBandwidth || v > maxBandwidth {
			return nil, errdefs.InvalidArgument("annotation %s: %q is outside [1k, 1P]", a.key, a.val)
		}
		*a.dest = uint64(v)
	}
	return &bw, nil
}

var quantitySuffixes = map[string]*big.Rat{
	"":   big.NewRat(1, 1),
	"n":  big.NewRat(1, 1_000_000_000),
	"u":  big.NewRat(1, 1_000_000),
	"m":  big.NewRat(1, 1_000),
	"k":  big.NewRat(1_000, 1),
	"M":  big.NewRat(1_000_000, 1),
	"G":  big.NewRat(1_000_000_000, 1),
	"T":  big.NewRat(1_000_000_000_000, 1),
	"P":  big.NewRat(1_000_000_000_000_000, 1),
	"E":  big.NewRat(1_000_000_000_000_000_000, 1),
	"Ki": big.NewRat(1<<10, 1),
	"Mi": big.NewRat(1<<20, 1),
	"Gi": big.NewRat(1<<30, 1),
	"Ti": big.NewRat(1<<40, 1),
	"Pi": big.NewRat(1<<50, 1),
	"Ei": big.NewRat(1<<60, 1),
}

// ParseQuantity parses a Kubernetes quantity ("10M", "1Gi", "1.5k", "2e3", "500m") and returns its value rounded
// up to an integer, as resource.Quantity.Value does. Negative values and values above 2^63-1 are refused.
func ParseQuantity(s string) (int64, error) {
	if s == "" || strings.TrimSpace(s) != s {
		return 0, errdefs.InvalidArgument("invalid quantity %q", s)
	}
	// Split the number (sign, digits, optional fraction) from the suffix.
	i := 0
	if s[0] == '+' || s[0] == '-' {
		i++
	}
	digits, dot := 0, false
	for ; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' {
			digits++
			continue
		}
		if c == '.' && !dot {
			dot = true
			continue
		}
		break
	}
	if digits == 0 {
		return 0, errdefs.InvalidArgument("invalid quantity %q", s)
	}
	num, ok := new(big.Rat).SetString(s[:i])
	if !ok {
		return 0, errdefs.InvalidArgument("invalid quantity %q", s)
	}
	suffix := s[i:]
	if mult, ok := quantitySuffixes[suffix]; ok {
		num.Mul(num, mult)
	} else if suffix[0] == 'e' || suffix[0] == 'E' {
		exp, ok := new(big.Int).SetString(suffix[1:], 10)
		if !ok || !exp.IsInt64() || exp.Int64() > 30 || exp.Int64() < -30 {
			return 0, errdefs.InvalidArgument("invalid quantity %q", s)
		}
		e := exp.Int64()
		p := new(big.Int).Exp(big.NewInt(10), big.NewInt(abs(e)), nil)
		if e >= 0 {
			num.Mul(num, new(big.Rat).SetInt(p))
		} else {
			num.Quo(num, new(big.Rat).SetInt(p))
		}
	} else {
		return 0, errdefs.InvalidArgument("invalid quantity %q: unknown suffix %q", s, suffix)
	}
	if num.Sign() < 0 {
		return 0, errdefs.InvalidArgument("negative quantity %q", s)
	}
	// Round up.
	q, r := new(big.Int).QuoRem(num.Num(), num.Denom(), new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 0, errdefs.InvalidArgument("quantity %q is too large", s)
	}
	return q.Int64(), nil
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
