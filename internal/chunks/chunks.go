// Package chunks stores a file in ConfigMaps for a UserImport and reads it
// back: one object holds at most about 1 MiB, so a larger file is split
// across several (see v1alpha1.ChunksAnnotation). The kubectl plugin writes
// the layout with Store and the UserImport controller reads it with Load.
package chunks

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
)

// Size keeps each ConfigMap well under the 1 MiB object limit.
const Size = 900 << 10

// MaxChunks bounds how many ConfigMaps one file may span.
const MaxChunks = 256

// Name is the name of the i-th ConfigMap of a file stored under name.
func Name(name string, i int) string {
	if i == 0 {
		return name
	}
	return fmt.Sprintf("%s-%d", name, i)
}

// Store writes data under key into ConfigMaps name, name-1, name-2, ...;
// the first one says how many there are.
func Store(ctx context.Context, c client.Client, ns, name, key string, data []byte) ([]*corev1.ConfigMap, error) {
	n := max(1, (len(data)+Size-1)/Size)
	if n > MaxChunks {
		return nil, fmt.Errorf("the file is %d bytes, more than %d ConfigMaps of %d bytes hold", len(data), MaxChunks, Size)
	}
	cms := make([]*corev1.ConfigMap, 0, n)
	for i := range n {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: Name(name, i)}}
		if i == 0 && n > 1 {
			cm.Annotations = map[string]string{v1alpha1.ChunksAnnotation: fmt.Sprint(n)}
		}
		part := data[i*Size : min(len(data), (i+1)*Size)]
		cm.BinaryData = map[string][]byte{key: bytes.Clone(part)}
		if err := c.Create(ctx, cm); err != nil {
			return nil, fmt.Errorf("creating ConfigMap %s: %w", cm.Name, err)
		}
		cms = append(cms, cm)
	}
	return cms, nil
}

// Error is a problem with the stored file that a person must fix, or, when
// Missing, a ConfigMap that is not there yet.
type Error struct {
	Msg     string
	Missing bool
}

func (e *Error) Error() string { return e.Msg }

// Load reads the file stored under key in ConfigMap name and the chunks the
// first one announces, from data or binaryData. It stops reading once more
// than maxBytes are read and returns what it has, so the caller reports the
// size. Problems with the objects are *Error; failed reads are returned as
// they are.
func Load(ctx context.Context, r client.Reader, ns, name, key string, maxBytes int64) ([]byte, error) {
	var buf bytes.Buffer
	n := 1
	for i := 0; i < n; i++ {
		var cm corev1.ConfigMap
		if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: Name(name, i)}, &cm); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &Error{Msg: fmt.Sprintf("ConfigMap %s not found", Name(name, i)), Missing: true}
			}
			return nil, fmt.Errorf("reading ConfigMap %s: %w", Name(name, i), err)
		}
		if v, ok := cm.Annotations[v1alpha1.ChunksAnnotation]; ok && i == 0 {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 1 || n > MaxChunks {
				return nil, &Error{Msg: fmt.Sprintf("annotation %s of ConfigMap %s must be a number from 1 to %d", v1alpha1.ChunksAnnotation, name, MaxChunks)}
			}
		}
		if s, ok := cm.Data[key]; ok {
			buf.WriteString(s)
		} else if b, ok := cm.BinaryData[key]; ok {
			buf.Write(b)
		} else {
			return nil, &Error{Msg: fmt.Sprintf("ConfigMap %s has no key %q", cm.Name, key)}
		}
		if int64(buf.Len()) > maxBytes {
			break
		}
	}
	return buf.Bytes(), nil
}
