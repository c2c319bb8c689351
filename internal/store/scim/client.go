package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"roster.dev/roster/internal/store"
)

// mediaType is SCIM's JSON media type (RFC 7644 section 3.1).
const mediaType = "application/scim+json"

// Error is an error answer from the service: its HTTP status and, from the
// SCIM error body (RFC 7644 section 3.12), its scimType and detail. It
// unwraps to the store error the status means, so callers use errors.Is.
type Error struct {
	Method, Path string
	Status       int
	ScimType     string
	Detail       string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scim %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.ScimType != "" {
		fmt.Fprintf(&b, " (%s)", e.ScimType)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	return b.String()
}

// Unwrap maps the status to the store's errors.
func (e *Error) Unwrap() error {
	switch {
	case e.Status == http.StatusNotFound:
		return store.ErrNotFound
	case e.Status == http.StatusConflict && (e.ScimType == "" || e.ScimType == "uniqueness"):
		return store.ErrAlreadyExists
	case e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout || e.Status >= 500:
		return store.ErrUnavailable
	case e.Status == http.StatusConflict || e.Status == http.StatusPreconditionFailed:
		// Another write got there first: the next pass reads it afresh.
		return nil
	case e.Status >= 400:
		// The service refuses the request itself (RFC 7644 section 3.12:
		// invalidValue, invalidSyntax, mutability, ...; or the token's
		// rights): sending it again gets the same answer.
		return store.ErrRejected
	}
	return nil
}

// errorBody is a SCIM error message. status is a string in the RFC, but
// some services send a number.
type errorBody struct {
	Status   json.RawMessage `json:"status"`
	ScimType string          `json:"scimType"`
	Detail   string          `json:"detail"`
}

// client sends SCIM requests: bearer token, rate limit, retries on 429 and
// 503 as Retry-After says, and error bodies turned into *Error.
type client struct {
	http         *http.Client
	base         *url.URL
	token        string
	limiter      *rate.Limiter
	maxRetries   int
	maxRetryWait time.Duration
	now          func() time.Time
}

// request is one call; body is marshalled once so that retries resend it.
type request struct {
	method string
	path   string // relative to the base URL, with its query
	body   any
	header http.Header
}

// do sends the request and decodes a JSON answer into out (when not nil).
// It returns the answer's headers.
func (c *client) do(ctx context.Context, r request, out any) (http.Header, error) {
	var payload []byte
	if r.body != nil {
		var err error
		if payload, err = json.Marshal(r.body); err != nil {
			return nil, fmt.Errorf("encoding the %s %s body: %w", r.method, pathOnly(r.path), err)
		}
	}
	target := c.base.JoinPath()
	rel, err := url.Parse(r.path)
	if err != nil {
		return nil, fmt.Errorf("scim path %q: %w", r.path, err)
	}
	target.Path = strings.TrimSuffix(target.Path, "/") + rel.Path
	target.RawQuery = rel.RawQuery

	for attempt := 0; ; attempt++ {
		if c.limiter != nil {
			if err := c.limiter.Wait(ctx); err != nil {
				return nil, fmt.Errorf("waiting for the scim rate limit: %w", err)
			}
		}
		req, err := http.NewRequestWithContext(ctx, r.method, target.String(), bytes.NewReader(payload))
		if err != nil {
			return nil, fmt.Errorf("scim %s %s: %w", r.method, pathOnly(r.path), err)
		}
		for k, v := range r.header {
			req.Header[k] = v
		}
		req.Header.Set("Accept", mediaType)
		if payload != nil {
			req.Header.Set("Content-Type", mediaType)
		}
		// The token goes into this header only; nothing else sees it.
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("scim %s %s: %w", r.method, pathOnly(r.path), ctx.Err())
			}
			return nil, fmt.Errorf("scim %s %s: %w: %w", r.method, pathOnly(r.path), store.ErrUnavailable, redactURL(err))
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		_ = resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("scim %s %s: reading the answer: %w: %w", r.method, pathOnly(r.path), store.ErrUnavailable, err)
		}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			wait, ok := c.retryAfter(resp.Header.Get("Retry-After"), attempt)
			if ok && attempt < c.maxRetries {
				if err := sleep(ctx, wait); err != nil {
					return nil, fmt.Errorf("scim %s %s: waiting to retry: %w", r.method, pathOnly(r.path), err)
				}
				continue
			}
		}
		if resp.StatusCode >= 300 {
			return resp.Header, c.errorOf(r.method, r.path, resp.StatusCode, body)
		}
		if out != nil && len(bytes.TrimSpace(body)) > 0 {
			if err := json.Unmarshal(body, out); err != nil {
				return nil, fmt.Errorf("scim %s %s: decoding the answer: %w", r.method, pathOnly(r.path), err)
			}
		}
		return resp.Header, nil
	}
}

// retryAfter is how long to wait before attempt+1: what Retry-After says
// (seconds or an HTTP date), else an exponential backoff from one second.
// It is false when the wait is longer than the service is worth waiting for.
func (c *client) retryAfter(header string, attempt int) (time.Duration, bool) {
	wait := time.Second << min(attempt, 6)
	if header = strings.TrimSpace(header); header != "" {
		if secs, err := strconv.Atoi(header); err == nil && secs >= 0 {
			wait = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(header); err == nil {
			wait = max(t.Sub(c.now()), 0)
		}
	}
	return wait, wait <= c.maxRetryWait
}

func (c *client) errorOf(method, path string, status int, body []byte) error {
	e := &Error{Method: method, Path: pathOnly(path), Status: status}
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil {
		e.ScimType, e.Detail = eb.ScimType, eb.Detail
	} else if len(body) > 0 {
		// Not a SCIM error body (a proxy's page, say): keep a short excerpt.
		e.Detail = strings.TrimSpace(string(body[:min(len(body), 200)]))
	}
	return e
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// pathOnly drops the query from a path for messages: filters hold email
// addresses, which need not fill logs.
func pathOnly(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

// redactURL keeps the query string of a failed request out of the error.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
