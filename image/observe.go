package image

import "time"

// Observer receives pull measurements (metrics). Nil fields are skipped.
type Observer struct {
	// Pulled is called once per Pull with its duration (resolve, download and unpack) and outcome.
	Pulled func(d time.Duration, err error)
	// Downloaded is called with the bytes of each blob downloaded from a registry (also partial ones).
	Downloaded func(n int64)
}

func (o Observer) pulled(start time.Time, err error) {
	if o.Pulled != nil {
		o.Pulled(time.Since(start), err)
	}
}

func (o Observer) downloaded(n int64) {
	if o.Downloaded != nil && n > 0 {
		o.Downloaded(n)
	}
}
