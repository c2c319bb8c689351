// Package chunks stores a file in ConfigMaps for a UserImport: one object
// holds at most about 1 MiB, so a larger file is split across several, in
// the layout the UserImport controller reads (see v1alpha1.ChunksAnnotation).
package chunks

import (
	"bytes"
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
)

// Size keeps each ConfigMap well under the 1 MiB object limit.
const Size = 900 << 10

// Store writes data under key into ConfigMaps name, name-1, name-2, ...;
// the first one says how many there are.
func Store(ctx context.Context, c client.Client, ns, name, key string, data []byte) ([]*corev1.ConfigMap, error) {
	n := max(1, (len(data)+Size-1)/Size)
	cms := make([]*corev1.ConfigMap, 0, n)
	for i := range n {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if i > 0 {
			cm.Name = fmt.Sprintf("%s-%d", name, i)
		} else if n > 1 {
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
