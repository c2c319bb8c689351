package controllers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/chunks"
	"roster.dev/roster/internal/fetch"
)

// source is an import's file, ready to read.
type source struct {
	io.ReaderAt
	size   int64
	sha256 string
	close  func() error
}

// Close releases the file: the bytes it holds, or its temporary file. A
// second Close does nothing.
func (s *source) Close() error {
	s.ReaderAt = nil
	if close := s.close; close != nil {
		s.close = nil
		return close()
	}
	return nil
}

// sourceError is a problem with spec.source. Waiting ones (a ConfigMap not
// created yet, a server that did not answer) are retried; the others need a
// person to fix the import.
type sourceError struct {
	field   string
	msg     string
	waiting bool
}

func (e *sourceError) Error() string { return e.field + ": " + e.msg }

// DefaultImportMaxRows is SourceLoader.MaxRows when it is zero.
const DefaultImportMaxRows = 1_000_000

// SourceLoader fetches the file an import names, within the limits an
// import may use in a cluster shared by many teams.
type SourceLoader struct {
	// Reader reads ConfigMaps and Secrets straight from the API server, so
	// that the cache never holds every ConfigMap of the cluster.
	Reader client.Reader
	// AllowedHosts returns the hosts an import's url source may name and be
	// redirected to: the importURLHosts of the tenancy rule that admits the
	// import's namespace to its store. Entries are host names or addresses,
	// optionally with a port (without one, only 443), or "*.example.com"
	// for every name under example.com. nil, or an empty list, refuses url
	// sources.
	AllowedHosts func(ctx context.Context, imp *v1alpha1.UserImport) ([]string, error)
	// AllowAddr says which addresses a url source may connect to, checked on
	// each address dialled, after name resolution. nil allows only public
	// addresses (fetch.IsGlobal); tests that serve files on loopback widen it.
	AllowAddr func(netip.Addr) bool
	// RootCAs verify the servers of url sources; nil uses the system's.
	RootCAs *x509.CertPool
	// FetchTimeout bounds the download of a url source, from the first
	// connect to the last byte, redirects included (fetch.DefaultTimeout,
	// two minutes, when zero). Each connect has fetch.DefaultConnectTimeout.
	FetchTimeout time.Duration
	// MaxBytes caps a source's size.
	MaxBytes int64
	// MaxRows caps the data rows of one import (DefaultImportMaxRows when
	// zero): a file with more fails before any row is applied.
	MaxRows int
	// TempDir receives url sources while they are checked.
	TempDir string
}

func (l *SourceLoader) load(ctx context.Context, imp *v1alpha1.UserImport) (*source, error) {
	src := imp.Spec.Source
	switch {
	case src.Inline != "":
		return l.fromBytes("spec.source.inline", []byte(src.Inline))
	case src.ConfigMapRef != nil:
		return l.fromConfigMaps(ctx, imp.Namespace, src.ConfigMapRef)
	case src.SecretRef != nil:
		return l.fromSecret(ctx, imp.Namespace, src.SecretRef)
	case src.URL != nil:
		return l.fromURL(ctx, imp)
	}
	return nil, &sourceError{field: "spec.source", msg: "no source is set"}
}

func (l *SourceLoader) maxRows() int {
	if l.MaxRows <= 0 {
		return DefaultImportMaxRows
	}
	return l.MaxRows
}

// redactsValues says whether an import's failures must not quote its file.
// Whoever may create the import may not be allowed to read the Secret the
// operator reads for it, nor the file a URL serves to the operator's
// address; inline text and ConfigMaps are theirs to read anyway.
func redactsValues(src v1alpha1.ImportSource) bool {
	return src.SecretRef != nil || src.URL != nil
}

func (l *SourceLoader) fromBytes(field string, b []byte) (*source, error) {
	if int64(len(b)) > l.MaxBytes {
		return nil, &sourceError{field: field, msg: fmt.Sprintf("the file is %d bytes, more than the limit of %d", len(b), l.MaxBytes)}
	}
	sum := sha256.Sum256(b)
	return &source{ReaderAt: bytes.NewReader(b), size: int64(len(b)), sha256: hex.EncodeToString(sum[:])}, nil
}

func (l *SourceLoader) fromConfigMaps(ctx context.Context, ns string, ref *v1alpha1.KeyReference) (*source, error) {
	field := "spec.source.configMapRef"
	data, err := chunks.Load(ctx, l.Reader, ns, ref.Name, ref.Key, l.MaxBytes)
	var ce *chunks.Error
	if errors.As(err, &ce) {
		return nil, &sourceError{field: field, msg: ce.Msg, waiting: ce.Missing}
	}
	if err != nil {
		return nil, err
	}
	return l.fromBytes(field, data)
}

func (l *SourceLoader) fromSecret(ctx context.Context, ns string, ref *v1alpha1.KeyReference) (*source, error) {
	field := "spec.source.secretRef"
	var s corev1.Secret
	if err := l.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &sourceError{field: field, msg: fmt.Sprintf("Secret %s not found", ref.Name), waiting: true}
		}
		return nil, fmt.Errorf("reading Secret %s: %w", ref.Name, err)
	}
	b, ok := s.Data[ref.Key]
	if !ok {
		return nil, &sourceError{field: field, msg: fmt.Sprintf("Secret %s has no key %q", ref.Name, ref.Key)}
	}
	return l.fromBytes(field, b)
}

// fromURL downloads the file into a temporary file, hashing as it goes, and
// refuses it unless the digest matches. The fetch package enforces where it
// may come from: HTTPS, the allowed hosts, public addresses.
func (l *SourceLoader) fromURL(ctx context.Context, imp *v1alpha1.UserImport) (*source, error) {
	field := "spec.source.url"
	u := imp.Spec.Source.URL
	var hosts []string
	if l.AllowedHosts != nil {
		var err error
		if hosts, err = l.AllowedHosts(ctx, imp); err != nil {
			return nil, &sourceError{field: field, msg: fmt.Sprintf("url sources are refused: %v", err)}
		}
	}
	if len(hosts) == 0 {
		return nil, &sourceError{field: field, msg: "url sources are refused: the tenancy rule of the import's identity store lists no importURLHosts for this namespace"}
	}
	body, err := fetch.Get(ctx, u.URL, hosts, fetch.Options{AllowAddr: l.AllowAddr, RootCAs: l.RootCAs, Timeout: l.FetchTimeout})
	if err != nil {
		return nil, fetchError(field, err)
	}
	defer body.Close()
	f, err := os.CreateTemp(l.TempDir, "roster-import-*")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary file: %w", err)
	}
	cleanup := func() error { _ = f.Close(); return os.Remove(f.Name()) }
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, l.MaxBytes+1))
	if err != nil {
		_ = cleanup()
		return nil, fetchError(field, err)
	}
	if n > l.MaxBytes {
		_ = cleanup()
		return nil, &sourceError{field: field, msg: fmt.Sprintf("the file is larger than the limit of %d bytes", l.MaxBytes)}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if sum != u.SHA256 {
		_ = cleanup()
		return nil, &sourceError{field: field + ".sha256", msg: fmt.Sprintf("the file's SHA-256 is %s, not %s", sum, u.SHA256)}
	}
	return &source{ReaderAt: f, size: n, sha256: sum, close: cleanup}, nil
}

// fetchError says why a download failed. What the rules refuse, a 4xx
// answer and a transfer that ran out of time need a person (a server that
// trickles its file is not given another two minutes of a worker); a
// connection that failed and a 5xx answer may pass and are retried.
func fetchError(field string, err error) error {
	var (
		refused *fetch.RefusedError
		timeout *fetch.TimeoutError
		status  *fetch.StatusError
	)
	switch {
	case errors.As(err, &refused):
		return &sourceError{field: field, msg: "refused: " + refused.Error()}
	case errors.As(err, &timeout):
		return &sourceError{field: field, msg: "fetching the file failed: " + timeout.Error()}
	case errors.As(err, &status):
		return &sourceError{field: field, msg: "fetching the file failed: " + status.Error(), waiting: status.Code >= 500}
	default:
		return &sourceError{field: field, msg: fmt.Sprintf("fetching the file failed: %v", err), waiting: true}
	}
}

func isWaiting(err error) bool {
	var se *sourceError
	return errors.As(err, &se) && se.waiting
}
