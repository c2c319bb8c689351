package controllers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/chunks"
)

// source is an import's file, ready to read.
type source struct {
	io.ReaderAt
	size   int64
	sha256 string
	close  func() error
}

func (s *source) Close() error {
	if s.close != nil {
		return s.close()
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

// SourceLoader fetches the file an import names.
type SourceLoader struct {
	// Reader reads ConfigMaps and Secrets straight from the API server, so
	// that the cache never holds every ConfigMap of the cluster.
	Reader client.Reader
	// HTTP fetches url sources; it must only speak HTTPS.
	HTTP *http.Client
	// MaxBytes caps a source's size.
	MaxBytes int64
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
		return l.fromURL(ctx, src.URL)
	}
	return nil, &sourceError{field: "spec.source", msg: "no source is set"}
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
// refuses it unless the digest matches.
func (l *SourceLoader) fromURL(ctx context.Context, u *v1alpha1.URLSource) (*source, error) {
	field := "spec.source.url"
	if !strings.HasPrefix(u.URL, "https://") {
		return nil, &sourceError{field: field, msg: "only https URLs are accepted"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.URL, nil)
	if err != nil {
		return nil, &sourceError{field: field, msg: err.Error()}
	}
	resp, err := l.HTTP.Do(req)
	if err != nil {
		return nil, &sourceError{field: field, msg: fmt.Sprintf("fetching the file failed: %v", err), waiting: true}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &sourceError{field: field, msg: fmt.Sprintf("fetching the file failed: %s", resp.Status), waiting: resp.StatusCode >= 500}
	}
	f, err := os.CreateTemp(l.TempDir, "roster-import-*")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary file: %w", err)
	}
	cleanup := func() error { _ = f.Close(); return os.Remove(f.Name()) }
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, l.MaxBytes+1))
	if err != nil {
		_ = cleanup()
		return nil, &sourceError{field: field, msg: fmt.Sprintf("reading the file failed: %v", err), waiting: true}
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

func isWaiting(err error) bool {
	var se *sourceError
	return errors.As(err, &se) && se.waiting
}
