package web

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
)

// ipLimiter limits form submissions per client address: a token bucket per
// address, forgotten once idle for ten minutes or the time the bucket takes
// to fill, whichever is longer. It also limits failed sign-ins, per address
// and per client, keyed by what it is given.
type ipLimiter struct {
	every  time.Duration // one token per every
	burst  int
	forget time.Duration
	clock  clock.PassiveClock

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newIPLimiter(perMinute int, c clock.PassiveClock) *ipLimiter {
	return newLimiter(perMinute, time.Minute, c)
}

// newLimiter allows n events per period per key, n of them at once.
func newLimiter(n int, period time.Duration, c clock.PassiveClock) *ipLimiter {
	return &ipLimiter{every: period / time.Duration(n), burst: n, forget: max(10*time.Minute, period), clock: c, buckets: map[string]*bucket{}}
}

func (l *ipLimiter) bucket(key string) (*bucket, time.Time) {
	now := l.clock.Now()
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > l.forget {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Every(l.every), l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	return b, now
}

// allow takes a token for the key and reports whether there was one.
func (l *ipLimiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, now := l.bucket(key)
	return b.lim.AllowN(now, 1)
}

// blocked reports whether the key has no token left, without taking one:
// a sign-in is refused unheard once its address or client used up its
// failures.
func (l *ipLimiter) blocked(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, now := l.bucket(key)
	return b.lim.TokensAt(now) < 1
}

// fail takes a token for a failure.
func (l *ipLimiter) fail(key string) { l.allow(key) }

// clientIP is the address a submission is counted against.
func (s *Server) clientIP(r *http.Request) string {
	if h := s.cfg.ClientIPHeader; h != "" {
		if v := r.Header.Get(h); v != "" {
			parts := strings.Split(v, ",")
			if ip := net.ParseIP(strings.TrimSpace(parts[len(parts)-1])); ip != nil {
				return ip.String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
